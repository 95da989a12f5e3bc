"""The dispatch state machine: QUEUED -> DISPATCHING -> SENT | FAILED | AMBIGUOUS.

Each step commits before the next one starts, so whatever a crash interrupts is visible:
a redelivered task that finds DISPATCHING cannot know whether the provider got the message,
so it marks it AMBIGUOUS for reconcile and never sends again. Delivery attempts are counted
in the database (Redis has no delivery limit) and a message that keeps killing its worker
is parked after ``max_attempts``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, literal, select, update
from sqlalchemy.orm import Session

from providers.base import OutboundMessage, SendOutcome, SendResult
from providers.outcomes import may_send_again
from schema.models import Message, MessageEvent
from schema.states import Channel, MessageState
from worker.catalogue import Code
from worker.db import session_scope
from worker.pii import storable_raw
from worker.policy.claims import Claim
from worker.policy.merchants import provider_order
from worker.policy.pricing import provider_cost_fields
from worker.policy.sip import with_available_agent
from worker.policy.tendlc_send import refuse_unregistered_10dlc
from worker.policy.transitions import MESSAGE_COLUMNS, MESSAGES, check_move, transition, utcnow
from worker.settings import Settings
from worker.transient import retry_transient

__all__ = ["DispatchStep", "dispatch_message", "give_up_unavailable", "Sender", "BulkSender", "crash_if"]

#: Sends one message through an ordered list of provider names (failover, throttle and breaker inside).
Sender = Callable[[OutboundMessage, list[str]], SendResult]
#: Sends many messages of one route in one provider request; None when the route's first provider cannot.
BulkSender = Callable[[list[OutboundMessage], list[str]], "list[SendResult] | None"]
#: Tries to record a provider's answer through a dropped connection or a database restart (about 30 s in all):
#: once the provider has answered, losing that answer would leave the message DISPATCHING until the stale takeover.
RECORD_ATTEMPTS = 12
#: The history table, for Core INSERTs on the hot path.
EVENTS = cast(Table, MessageEvent.__table__)
#: The claim moves QUEUED -> DISPATCHING with its own statement (the hot path); the state machine must allow it.
_CLAIMED_FROM = check_move([MessageState.QUEUED], MessageState.DISPATCHING)
_C = MESSAGE_COLUMNS
#: The claim's UPDATE and its history row, built once (each keeps its cache key: nothing is rebuilt per message).
_CLAIM_RETURNS = (_C.merchant_id, _C.channel, _C.message_type, _C.recipient, _C.body, _C.sender, _C.subject,
                  _C.options, _C.units)
_CLAIM = (
    update(MESSAGES).where(_C.id == bindparam("m_id"), _C.status.in_(_CLAIMED_FROM),
                           _C.dispatch_attempts < bindparam("max_attempts"))
    .values(status=MessageState.DISPATCHING.value, updated_at=bindparam("now"),
            dispatch_attempts=_C.dispatch_attempts + 1)
    .returning(*_CLAIM_RETURNS))
_CLAIM_EVENT = insert(EVENTS).values(from_state=MessageState.QUEUED.value, to_state=MessageState.DISPATCHING.value,
                                     detail={})
_CLAIMED = _CLAIM.returning(_C.id).cte("claimed")
#: PostgreSQL: the claim and its history row in one statement (a data-modifying WITH writes the row from what the
#: UPDATE returned, so there is a history row exactly when the message was claimed). SQLite runs the two above.
_CLAIM_WITH_EVENT = select(*[_CLAIMED.c[column.name] for column in _CLAIM_RETURNS]).add_cte(
    insert(EVENTS).from_select(
        ["message_id", "from_state", "to_state", "at", "detail"],
        select(_CLAIMED.c.id, literal(MessageState.QUEUED.value), literal(MessageState.DISPATCHING.value),
               bindparam("now", type_=EVENTS.c.at.type), literal({}, type_=EVENTS.c.detail.type)),
    ).cte("claim_event"))


class DispatchStep(StrEnum):
    SENT = "SENT"
    FAILED = "FAILED"
    AMBIGUOUS = "AMBIGUOUS"
    RETRY = "RETRY"  #: every provider unavailable, nothing left our side: try again later
    THROTTLED = "THROTTLED"  #: the route's throughput limit is reached: wait for a slot
    SKIPPED = "SKIPPED"  #: already dispatched, settled, not due, or missing: nothing to do
    REDELIVERED = "REDELIVERED"  #: found DISPATCHING after a crash: handed to reconcile
    PARKED = "PARKED"  #: too many deliveries: failed with E818


def crash_if(settings: Settings, point: str) -> None:
    """Test-only fault injection: die like a SIGKILLed process at a named point."""
    if settings.crash_point == point:
        os._exit(137)


def dispatch_message(message_id: str, settings: Settings, sender: Sender, *, redelivered: bool = True
                     ) -> DispatchStep:
    """Take one message through dispatch once; safe to call any number of times for the same id.

    ``redelivered`` says whether the broker marked this copy as given back after its worker was lost. Only
    such a copy may conclude from DISPATCHING that a worker died mid-send; a fresh copy (the outbox relay's,
    or a resend's) that finds DISPATCHING is a second copy while the first is still sending. Unknown: True.
    """
    claim = _claim(message_id, settings.default_provider, settings.max_delivery_attempts)
    if claim is None:
        return _not_claimed(message_id, settings.max_delivery_attempts, redelivered)
    if refuse_unregistered_10dlc([claim]):  # a campaign suspended while the message waited
        return DispatchStep.FAILED
    claim = with_available_agent(claim, settings)  # a voice call asking for an agent: one AVAILABLE now
    crash_if(settings, "before_provider_call")
    result = sender(claim.message, claim.providers)
    crash_if(settings, "after_provider_call")
    step = retry_transient(lambda: _record(claim, result), attempts=RECORD_ATTEMPTS, base=0.1, cap=5.0,
                           what=f"recording the provider's answer for message {message_id}")
    crash_if(settings, "after_record")
    return step


def _not_claimed(message_id: str, max_attempts: int, redelivered: bool) -> DispatchStep:
    """A delivery that found the message not claimable: say why, changing only what this copy may change.

    DISPATCHING on a redelivered copy means a worker died mid-send (the provider may have it: reconcile decides);
    QUEUED here means the attempt cap was reached (a message that keeps killing its worker is parked); anything
    else, or a fresh copy finding DISPATCHING, was or is being done by another copy and is left alone. Each step
    is a conditional UPDATE, so a state read here cannot be acted on after another copy changed it.
    """
    with session_scope() as session:
        if redelivered and transition(session, message_id, [MessageState.DISPATCHING], MessageState.AMBIGUOUS,
                                      detail={"why": "redelivered while DISPATCHING: the provider may have it"}):
            return DispatchStep.REDELIVERED
        row = session.execute(
            update(MESSAGES).where(MESSAGE_COLUMNS.id == message_id,
                                    MESSAGE_COLUMNS.status == MessageState.QUEUED.value,
                                    MESSAGE_COLUMNS.dispatch_attempts >= max_attempts)
            .values(dispatch_attempts=MESSAGE_COLUMNS.dispatch_attempts + 1)
            .returning(MESSAGE_COLUMNS.id)).first()
        if row is None:
            return DispatchStep.SKIPPED
        _fail(session, message_id, Code.ATTEMPTS_EXHAUSTED, [MessageState.QUEUED])
    return DispatchStep.PARKED


def _claim(message_id: str, default_provider: str, max_attempts: int) -> Claim | None:
    """QUEUED -> DISPATCHING, counting the delivery in the same UPDATE and commit (the hot path: one commit).

    The UPDATE returns what the send needs, and the history row is the one a transition writes: two statements.
    """
    now = utcnow()
    with session_scope() as session:
        params = {"m_id": message_id, "max_attempts": max_attempts, "now": now}
        if session.get_bind().dialect.name == "postgresql":
            msg = session.execute(_CLAIM_WITH_EVENT, params).first()
            if msg is None:
                return None
        else:
            msg = session.execute(_CLAIM, params).first()
            if msg is None:
                return None
            session.execute(_CLAIM_EVENT, {"message_id": message_id, "at": now})
        providers = provider_order(session, msg.merchant_id, msg.channel, msg.message_type, default_provider)
    outbound = OutboundMessage(message_id=message_id, channel=Channel(msg.channel), message_type=msg.message_type,
                               recipient=msg.recipient, body=msg.body, sender=msg.sender, subject=msg.subject,
                               options=dict(msg.options))
    return Claim(outbound, providers, msg.merchant_id, msg.units)


def _record(claim: Claim, result: SendResult) -> DispatchStep:
    with session_scope() as session:
        return _record_in(session, claim, result)


def _record_in(session: Session, claim: Claim, result: SendResult) -> DispatchStep:
    """One message's outcome, in the caller's transaction (one per message, or one per batch)."""
    mid, sending, raw = claim.message.message_id, [MessageState.DISPATCHING], storable_raw(result.raw)
    if result.outcome == SendOutcome.ACCEPTED:
        settled = MessageState.DELIVERED if result.final else MessageState.SENT
        transition(session, mid, sending, settled, provider=result.provider, provider_ref=result.provider_ref,
                   detail={"providerCode": result.provider_code, "final": result.final, "raw": raw},
                   **provider_cost_fields(result.cost_micros))
        return DispatchStep.SENT
    if result.outcome == SendOutcome.REJECTED:
        _fail(session, mid, result.error_code or Code.PROVIDER_REJECTED, sending, provider=result.provider,
              detail=f"{result.provider_code}: {result.detail}", raw=raw)
        return DispatchStep.FAILED
    if not may_send_again(result.outcome):  # AMBIGUOUS: it may have reached the provider, reconcile decides
        transition(session, mid, sending, MessageState.AMBIGUOUS, provider=result.provider,
                   detail={"why": result.detail[:300], "raw": raw})
        return DispatchStep.AMBIGUOUS
    # Nothing left our side and this delivery ended cleanly: it is not one of the crashed deliveries the
    # attempt cap counts, so a throttled burst or a provider outage never parks a message as poison (E818).
    transition(session, mid, sending, MessageState.QUEUED, detail={"why": result.detail[:300]},
               dispatch_attempts=MESSAGE_COLUMNS.dispatch_attempts - 1)
    return DispatchStep.THROTTLED if result.throttled else DispatchStep.RETRY


def _fail(session: Session, message_id: str, code: Code, from_states: list[MessageState], *,
          provider: str | None = None, detail: str = "", raw: Any = None) -> None:
    """Final failure (the move gives the reserved units back: the message costs nothing)."""
    extra: dict[str, Any] = {"provider": provider} if provider else {}
    history = {"code": code.value} | ({"raw": raw} if raw is not None else {})
    transition(session, message_id, from_states, MessageState.FAILED, error_code=code.value,
               error_detail=(detail or code.name)[:500], detail=history, **extra)


def give_up_unavailable(message_id: str, give_up_after: float, waiting_since: float) -> bool:
    """FAILED with E816 (units returned) once a message has waited ``give_up_after`` seconds for a provider.

    ``waiting_since`` (epoch seconds) is when its dispatch first found every provider unavailable: the clock is
    the outage, not the message's age, so a message that sat in a long backlog still gets its full wait. Our own
    throughput limit never counts here (DispatchStep.THROTTLED waits for its slot). False while it may wait on.
    """
    if time.time() - waiting_since < give_up_after:
        return False
    with session_scope() as session:
        msg = session.get(Message, message_id)
        if msg is None or msg.status != MessageState.QUEUED.value:
            return False
        _fail(session, message_id, Code.PROVIDER_UNAVAILABLE, [MessageState.QUEUED])
        return True
