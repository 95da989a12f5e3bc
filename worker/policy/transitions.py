"""Message state changes: one conditional UPDATE plus a history row, so concurrent workers never both win.

States only move forward: an update names the states it may leave, and a late or repeated
event that finds the message elsewhere changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, insert, update
from sqlalchemy.orm import Session

from schema.models import Message, MessageEvent, OutboundCallback
from schema.states import TERMINAL_STATES, CallbackState, Freshness, MessageState

__all__ = ["transition", "utcnow", "callback_body", "queue_final_callback", "MESSAGES", "MESSAGE_COLUMNS"]


MESSAGES = cast(Table, Message.__table__)
_EVENTS = cast(Table, MessageEvent.__table__)
#: The messages table's columns, for the ``where`` conditions and values callers hand to :func:`transition`. An
#: ORM attribute (``Message.units``) there would turn the statement back into an ORM one, and its overhead.
MESSAGE_COLUMNS = MESSAGES.c


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def transition(session: Session, message_id: str, from_states: Iterable[MessageState], to_state: MessageState,
               *, detail: dict[str, Any] | None = None, where: Iterable[ColumnElement[bool]] = (),
               **fields: Any) -> bool:
    """Move ``message_id`` from one of ``from_states`` to ``to_state``; False when it was not in any of them
    (or when one of the extra ``where`` conditions no longer holds)."""
    now = utcnow()
    values: dict[str, Any] = {"status": to_state.value, "updated_at": now, **fields}
    if to_state in TERMINAL_STATES:
        values.update(freshness=Freshness.FINAL.value, final_at=now)
    sources = [s.value for s in from_states]
    # Core statements on the tables, not ORM-enabled ones: no identity map is involved, and the ORM's bulk
    # UPDATE/INSERT machinery costs about half a millisecond per statement on this, the hottest path.
    c = MESSAGES.c
    row = session.execute(
        update(MESSAGES).where(c.id == message_id, c.status.in_(sources), *where).values(**values)
        .returning(c.merchant_id, c.request_id, c.options, c.error_code, c.units)
    ).first()
    if row is None:
        return False
    session.execute(insert(_EVENTS).values(
        message_id=message_id, from_state=None if len(sources) > 1 else sources[0], to_state=to_state.value, at=now,
        detail=detail or {}))
    if to_state in TERMINAL_STATES and (row.options or {}).get("dlrUrl") and row.merchant_id is not None:
        _queue_callback(session, message_id, to_state, now, row)
    return True


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


def _queue_callback(session: Session, message_id: str, status: MessageState, now: dt.datetime, row: Any) -> None:
    """Write the callback in the same transaction that made the message FINAL: it cannot be forgotten."""
    queue_final_callback(session, message_id, row.merchant_id, row.request_id, status, str(row.options["dlrUrl"]),
                         now, error_code=row.error_code, units=row.units, options=row.options)


def queue_final_callback(session: Session, message_id: str, merchant_id: int, request_id: str, status: MessageState,
                         url: str, now: dt.datetime, *, error_code: str | None, units: int,
                         options: dict[str, Any] | None = None) -> None:
    """The callback row of a message that is FINAL: by a transition, or refused at intake (FINAL from birth).

    A message row must already exist (the callback references it); the caller's transaction commits both.
    """
    session.execute(insert(OutboundCallback).values(
        id=str(uuid.uuid4()), message_id=message_id, merchant_id=merchant_id, event_status=status.value,
        url=url[:2000], state=CallbackState.PENDING.value, attempts=0, next_attempt_at=now,
        body=callback_body(message_id, request_id, status, now, error_code, units, options)))
