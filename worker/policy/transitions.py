"""The message state machine: which moves exist, and what reaching each final state implies, in one place.

A move is one conditional UPDATE plus a history row, so concurrent workers never both win: an update names the
states it may leave, and a late or repeated event that finds the message elsewhere changes nothing. Which moves
exist at all is :data:`MOVES`; a caller naming any other is a bug, refused with :class:`InvalidTransition` before
the database is touched. What a final state implies is :data:`FINAL`, applied here in the transaction of the move
that reached it, so no caller can forget an effect or apply one twice (a repeated move changes nothing, so it
refunds nothing):

* freshness FINAL and ``final_at`` (every final state);
* the balance (:class:`Settlement`): DELIVERED keeps the charge (a call's real minutes, when given as ``units``,
  settle the difference); FAILED and EXPIRED give the units back to the period they were charged to and keep
  them on the message as a record; REFUSED gives them back and records the message free (units and cost 0, no
  period), as a message refused at intake is;
* the merchant's callback, when the message has a ``dlrUrl`` and a merchant.

A move writes only the columns of :class:`MessageFields`; status, freshness, times and the period are the state
machine's own. :func:`transition` moves one message, :func:`transition_many` a set (a cancelled campaign).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, TypedDict, Unpack, cast

from sqlalchemy import ColumnElement, Row, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from schema.models import Message, MessageEvent, OutboundCallback
from schema.states import TERMINAL_STATES, CallbackState, Channel, Freshness, MessageState
from worker.errors import InvalidTransition
from worker.policy.quota import release_to_period, settle_voice_minutes

__all__ = [
    "transition", "transition_many", "check_move", "utcnow", "callback_body", "queue_final_callback", "MESSAGES",
    "MESSAGE_COLUMNS", "MOVES", "FINAL", "FinalEffect", "MessageFields", "Settlement",
]


MESSAGES = cast(Table, Message.__table__)
_EVENTS = cast(Table, MessageEvent.__table__)
_CALLBACKS = cast(Table, OutboundCallback.__table__)
#: The messages table's columns, for the ``where`` conditions and values callers hand to :func:`transition`. An
#: ORM attribute (``Message.units``) there would turn the statement back into an ORM one, and its overhead.
MESSAGE_COLUMNS = MESSAGES.c

S = MessageState

#: Every move a message may make. Final states have no way out. Why each exists:
MOVES: Mapping[MessageState, frozenset[MessageState]] = MappingProxyType({
    # released when due (outbox), or refused when checked again at its send time
    S.SCHEDULED: frozenset({S.QUEUED, S.REFUSED}),
    # claimed by dispatch; parked (E818) or no provider in time (E816); its campaign cancelled (E882)
    S.QUEUED: frozenset({S.DISPATCHING, S.FAILED, S.REFUSED}),
    # the provider's answer; a crash found on redelivery (AMBIGUOUS); nothing left our side (QUEUED again);
    # a delivery report that beat our own record of the send (DELIVERED, FAILED, SENT)
    S.DISPATCHING: frozenset({S.SENT, S.DELIVERED, S.FAILED, S.AMBIGUOUS, S.QUEUED}),
    # a delivery report, or reconcile's lookup; EXPIRED when no outcome came within the maximum age
    S.SENT: frozenset({S.DELIVERED, S.FAILED, S.EXPIRED}),
    # reconcile (or an ACCEPTED report) found it at the provider, or proved it never got there (QUEUED again)
    S.AMBIGUOUS: frozenset({S.SENT, S.QUEUED, S.DELIVERED, S.FAILED, S.EXPIRED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REFUSED: frozenset(),
})


class Settlement(StrEnum):
    """What a final state does to the merchant's balance."""

    KEEP = "KEEP"  #: charged: the units stay used (a call's real minutes settle the difference)
    REFUND = "REFUND"  #: costs nothing: the units go back; the message keeps them as a record
    VOID = "VOID"  #: never sent: the units go back and the message is recorded free (units, cost 0, no period)


@dataclass(frozen=True)
class FinalEffect:
    """What reaching one final state implies, besides freshness FINAL and ``final_at`` (every final state)."""

    settlement: Settlement
    #: The merchant hears of it at its dlrUrl (when the message has one and a merchant).
    callback: bool = True


FINAL: Mapping[MessageState, FinalEffect] = MappingProxyType({
    S.DELIVERED: FinalEffect(Settlement.KEEP),
    S.FAILED: FinalEffect(Settlement.REFUND),
    S.EXPIRED: FinalEffect(Settlement.REFUND),
    S.REFUSED: FinalEffect(Settlement.VOID),
})
assert set(FINAL) == TERMINAL_STATES and all(not MOVES[s] for s in FINAL) and set(MOVES) == set(MessageState)


class MessageFields(TypedDict, total=False):
    """The columns a move may set besides the state machine's own (status, freshness, times, period).

    A value may be an SQL expression evaluated in the UPDATE itself (``MESSAGE_COLUMNS.dispatch_attempts + 1``,
    ``coalesce(provider, ...)``).
    """

    provider: str | ColumnElement[Any] | None
    provider_ref: str | ColumnElement[Any] | None
    provider_priced: bool
    #: A call's real minutes on DELIVERED (the balance settles the difference from what was reserved).
    units: int
    cost_micros: int | ColumnElement[Any]
    error_code: str | None
    error_detail: str | None
    dispatch_attempts: int | ColumnElement[Any]
    reconcile_attempts: int
    reconcile_after: dt.datetime | None


_SETTABLE = frozenset(MessageFields.__annotations__)
_RETURNED = (MESSAGE_COLUMNS.id, MESSAGE_COLUMNS.merchant_id, MESSAGE_COLUMNS.request_id, MESSAGE_COLUMNS.options,
             MESSAGE_COLUMNS.error_code, MESSAGE_COLUMNS.units, MESSAGE_COLUMNS.channel, MESSAGE_COLUMNS.period_start)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_move(from_states: Iterable[MessageState], to_state: MessageState) -> list[str]:
    """The source states' values, once every ``from_state -> to_state`` is a move of :data:`MOVES`; raises
    :class:`InvalidTransition` otherwise. For set-based statements that move messages without :func:`transition`
    (they must follow the same table)."""
    sources = [s.value for s in from_states]
    wrong = [s for s in sources if to_state not in MOVES[MessageState(s)]]
    if wrong or not sources:
        raise InvalidTransition(f"no move {'|'.join(wrong) or '(no state)'} -> {to_state.value}")
    return sources


class _Unset(Enum):
    UNSET = "UNSET"


#: A column :func:`transition` leaves as it is (None would set it NULL).
UNSET = _Unset.UNSET
_SQL = ColumnElement[Any]


def transition(session: Session, message_id: str, from_states: Iterable[MessageState], to_state: MessageState,
               *, detail: dict[str, Any] | None = None, where: Iterable[ColumnElement[bool]] = (),
               provider: str | _SQL | None | _Unset = UNSET, provider_ref: str | _SQL | None | _Unset = UNSET,
               provider_priced: bool | _Unset = UNSET, units: int | _Unset = UNSET,
               cost_micros: int | _SQL | _Unset = UNSET, error_code: str | None | _Unset = UNSET,
               error_detail: str | None | _Unset = UNSET, dispatch_attempts: int | _SQL | _Unset = UNSET,
               reconcile_attempts: int | _Unset = UNSET, reconcile_after: dt.datetime | None | _Unset = UNSET
               ) -> bool:
    """Move ``message_id`` from one of ``from_states`` to ``to_state`` with the effects of :data:`FINAL`; False
    when it was not in any of them (or when one of the extra ``where`` conditions no longer holds).

    The keyword columns are those of :class:`MessageFields`; one left out keeps its value.
    """
    given = {"provider": provider, "provider_ref": provider_ref, "provider_priced": provider_priced, "units": units,
             "cost_micros": cost_micros, "error_code": error_code, "error_detail": error_detail,
             "dispatch_attempts": dispatch_attempts, "reconcile_attempts": reconcile_attempts,
             "reconcile_after": reconcile_after}
    fields = {key: value for key, value in given.items() if value is not UNSET}
    sources = _checked(from_states, to_state, fields)
    now, final = utcnow(), FINAL.get(to_state)
    before = _charged(session, [MESSAGE_COLUMNS.id == message_id], final, fields) \
        if _rewrites_charge(final, fields) else None
    # Core statements on the tables, not ORM-enabled ones: no identity map is involved, and the ORM's bulk
    # UPDATE/INSERT machinery costs about half a millisecond per statement on this, the hottest path.
    event = {"from_state": None if len(sources) > 1 else sources[0], "to_state": to_state.value, "at": now,
             "detail": detail or {}}
    values, extra = _values(to_state, now, fields), tuple(where)
    stmt, params = _move(message_id, sources, values, extra, session.get_bind().dialect.name == "postgresql")
    if stmt is not None:  # the UPDATE writes its own history row
        row = session.execute(stmt, params | {f"e_{key}": value for key, value in event.items()}).first()
        return row is not None and _moved(session, final, to_state, row, before, now)
    row = session.execute(*_move(message_id, sources, values, extra, False)).first()
    if row is None:
        return False
    session.execute(_INSERT_EVENT, {"message_id": message_id, **event})
    return _moved(session, final, to_state, row, before, now)


def _moved(session: Session, final: FinalEffect | None, to_state: MessageState, row: Row[Any],
           before: dict[str, _Charged] | None, now: dt.datetime) -> bool:
    """What follows a move that happened: the effects of a final state."""
    if final is not None:
        _reach_final(session, final, to_state, [row], before, now)
    return True


#: The history row, one statement object for every move (it keeps its cache key: nothing is rebuilt per call).
_INSERT_EVENT = insert(_EVENTS)
#: Moves whose values are all plain (no SQL expression) and that add no ``where``, by (sources, columns set): the
#: UPDATE is built once with bound parameters. There are a few dozen such shapes in all.
#: With ``history``, PostgreSQL's form: the UPDATE and its history row in one statement (a data-modifying WITH writes
#: the row from what the UPDATE returned, so there is one exactly when the message moved).
_MOVES_BUILT: dict[tuple[tuple[str, ...], tuple[str, ...], bool], Any] = {}


def _move(message_id: str, sources: list[str], values: dict[str, Any], where: tuple[ColumnElement[bool], ...],
          history: bool) -> tuple[Any, dict[str, Any]]:
    """The UPDATE of one move and its parameters: built once per shape when it can be (see :data:`_MOVES_BUILT`).

    With ``history`` it is the statement that also writes the history row (parameters ``e_*``), or None when the
    shape is not one built once (the caller then runs the UPDATE and the history INSERT).
    """
    c = MESSAGE_COLUMNS
    if where or any(isinstance(value, ColumnElement) for value in values.values()):
        if history:
            return None, {}
        return update(MESSAGES).where(c.id == message_id, c.status.in_(sources), *where) \
            .values(**values).returning(*_RETURNED), {}
    key = (tuple(sources), tuple(values), history)
    stmt = _MOVES_BUILT.get(key)
    if stmt is None:
        stmt = update(MESSAGES).where(c.id == bindparam("m_id"), c.status.in_(sources)) \
            .values({name: bindparam(f"v_{name}", type_=c[name].type) for name in values}).returning(*_RETURNED)
        stmt = _MOVES_BUILT[key] = _with_history(stmt) if history else stmt
    return stmt, {"m_id": message_id, **{f"v_{name}": value for name, value in values.items()}}


def _with_history(move: Any) -> Any:
    """``move`` (an UPDATE returning :data:`_RETURNED`) with the INSERT of its history row, as one statement."""
    moved = move.cte("moved")
    e = _EVENTS.c
    row = insert(_EVENTS).from_select(
        ["message_id", "from_state", "to_state", "at", "detail"],
        select(moved.c.id, bindparam("e_from_state", type_=e.from_state.type),
               bindparam("e_to_state", type_=e.to_state.type), bindparam("e_at", type_=e.at.type),
               bindparam("e_detail", type_=e.detail.type)))
    return select(*[moved.c[column.name] for column in _RETURNED]).add_cte(row.cte("history"))


def transition_many(session: Session, condition: ColumnElement[bool], from_states: Iterable[MessageState],
                    to_state: MessageState, *, detail: dict[str, Any] | None = None,
                    **fields: Unpack[MessageFields]) -> list[str]:
    """:func:`transition` for every message matching ``condition`` that is in one of ``from_states``, set-based:
    one UPDATE, one history INSERT, the balance given back once per period. Returns the ids moved.

    The messages are locked first, so none can move elsewhere between reading what it was charged and moving it.
    """
    sources = _checked(from_states, to_state, fields)
    now, final, c = utcnow(), FINAL.get(to_state), MESSAGE_COLUMNS
    before = _charged(session, [condition, c.status.in_(sources)], final, fields)
    if not before:
        return []
    rows = session.execute(update(MESSAGES).where(c.id.in_(list(before)))  # locked above: still in ``sources``
                           .values(**_values(to_state, now, fields)).returning(*_RETURNED)).all()
    session.execute(insert(_EVENTS), [
        {"message_id": r.id, "from_state": None if len(sources) > 1 else sources[0], "to_state": to_state.value,
         "at": now, "detail": detail or {}} for r in rows])
    if final is not None:
        _reach_final(session, final, to_state, rows, before, now)
    return [str(r.id) for r in rows]


def _checked(from_states: Iterable[MessageState], to_state: MessageState, fields: Mapping[str, Any]) -> list[str]:
    unknown = fields.keys() - _SETTABLE
    if unknown:
        raise InvalidTransition(f"a move cannot set {', '.join(sorted(unknown))}")
    final = FINAL.get(to_state)
    if "units" in fields and (final is None or final.settlement is Settlement.REFUND):
        raise InvalidTransition(f"a move to {to_state.value} cannot change what the message was charged")
    return check_move(from_states, to_state)


def _values(to_state: MessageState, now: dt.datetime, fields: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"status": to_state.value, "updated_at": now, **fields}
    final = FINAL.get(to_state)
    if final is not None:
        values.update(freshness=Freshness.FINAL.value, final_at=now)
        if final.settlement is Settlement.VOID:
            values.update(units=0, cost_micros=0, period_start=None)
    return values


@dataclass(frozen=True)
class _Charged:
    """What a message was charged before a move that changes its units or period (read before the UPDATE)."""

    units: int
    period: dt.date | None
    channel: str


def _rewrites_charge(final: FinalEffect | None, fields: Mapping[str, Any]) -> bool:
    """True when the move changes the units or period it must give back (VOID, or a call's real units): only
    such a single move pays for reading them first; the others read them in the UPDATE's RETURNING."""
    return final is not None and (final.settlement is Settlement.VOID or "units" in fields)


def _charged(session: Session, match: list[ColumnElement[bool]], final: FinalEffect | None,
             fields: Mapping[str, Any]) -> dict[str, _Charged]:
    """What the matching messages were charged, by id, read before the UPDATE.

    The rows are locked, so the UPDATE that follows finds them as read here: what is given back is exactly what
    they were charged.
    """
    c = MESSAGE_COLUMNS
    rows = session.execute(select(c.id, c.units, c.period_start, c.channel).where(*match).with_for_update()).all()
    charged = {str(r.id): _Charged(int(r.units), r.period_start, str(r.channel)) for r in rows}
    calls_only = final is not None and final.settlement is Settlement.KEEP and "units" in fields
    if calls_only and any(ch.channel != Channel.VOICE.value for ch in charged.values()):
        raise InvalidTransition("only a call's units change when it settles (its real minutes)")
    return charged


def _reach_final(session: Session, final: FinalEffect, status: MessageState, rows: Iterable[Row[Any]],
                 before: dict[str, _Charged] | None, now: dt.datetime) -> None:
    """The effects of :data:`FINAL` for the messages that just reached ``status``."""
    refunds: dict[tuple[int, str, dt.date | None], int] = defaultdict(int)
    callbacks = []
    for row in rows:
        if row.merchant_id is None:
            continue
        charged = before.get(str(row.id)) if before is not None else None
        if final.settlement is Settlement.KEEP:
            if charged is not None:
                settle_voice_minutes(session, row.merchant_id, charged.units, int(row.units), str(row.id))
        else:
            units, period = (charged.units, charged.period) if charged else (int(row.units), row.period_start)
            refunds[(int(row.merchant_id), str(row.channel), period)] += units
        if final.callback and (row.options or {}).get("dlrUrl"):
            callbacks.append(_callback_row(str(row.id), int(row.merchant_id), str(row.request_id), status,
                                           str(row.options["dlrUrl"]), now, error_code=row.error_code,
                                           units=int(row.units), options=row.options))
    for (merchant_id, channel, period), units in refunds.items():
        if units > 0:
            release_to_period(session, merchant_id, channel, units, period)
    if callbacks:
        session.execute(insert(_CALLBACKS), callbacks)


#: The merchant's own tags of a message (seed 000's ref, ref1, ref2, campaign), echoed in its callback.
CALLBACK_TAGS = ("ref", "ref1", "ref2", "campaignId", "campaignName")


def callback_body(message_id: str, request_id: str, status: MessageState, at: dt.datetime, error_code: str | None,
                  units: int, options: dict[str, Any] | None = None) -> str:
    """The delivery report sent to the merchant's dlrUrl: the exact bytes that are signed and sent.

    The message's tags (:data:`CALLBACK_TAGS`) come along under ``tags`` when it has any, so the merchant can
    match the report to its own records.
    """
    event: dict[str, Any] = {
        "type": "message.final", "messageId": message_id, "requestId": request_id, "status": status.value,
        "freshness": Freshness.FINAL.value, "errorCode": error_code, "units": units,
        "at": at.isoformat().replace("+00:00", "Z")}
    tags = {key: (options or {})[key] for key in CALLBACK_TAGS if (options or {}).get(key)}
    if tags:
        event["tags"] = tags
    return json.dumps(event, separators=(",", ":"), sort_keys=True)


def _callback_row(message_id: str, merchant_id: int, request_id: str, status: MessageState, url: str,
                  now: dt.datetime, *, error_code: str | None, units: int,
                  options: dict[str, Any] | None) -> dict[str, Any]:
    """The callback of a message that is FINAL, written in the same transaction that made it so: it cannot be
    forgotten."""
    return {"id": str(uuid.uuid4()), "message_id": message_id, "merchant_id": merchant_id,
            "event_status": status.value, "url": url[:2000], "state": CallbackState.PENDING.value, "attempts": 0,
            "next_attempt_at": now,
            "body": callback_body(message_id, request_id, status, now, error_code, units, options)}


def queue_final_callback(session: Session, message_id: str, merchant_id: int, request_id: str, status: MessageState,
                         url: str, now: dt.datetime, *, error_code: str | None, units: int,
                         options: dict[str, Any] | None = None) -> None:
    """The callback row of a message FINAL from birth (refused at intake); a move's own are written by it.

    A message row must already exist (the callback references it); the caller's transaction commits both.
    """
    session.execute(insert(_CALLBACKS).values(**_callback_row(
        message_id, merchant_id, request_id, status, url, now, error_code=error_code, units=units, options=options)))
