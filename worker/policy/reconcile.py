"""Reconcile-first settlement: ask the provider, never guess, and resend only on proof it never got the message.

AMBIGUOUS messages, and SENT messages whose delivery report is overdue, are looked up by
the provider's reference or by our own message id (which every driver passes to the
provider as its idempotency reference). The answer settles the state; NOT_FOUND puts the
message back to QUEUED for one more dispatch under the same reference; no answer leaves it
for the next sweep, until the maximum age turns it EXPIRED. The move returns the units at
FAILED and EXPIRED, and settles the real minutes of a call found DELIVERED
(:mod:`worker.policy.transitions`). Each sweep reads one batch ordered by age, so its cost grows linearly.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select, union_all, update
from sqlalchemy.orm import Session

from providers.base import DeliveryStatus, Provider, ProviderRef, StatusResult
from providers.outcomes import lookup_permits_resend
from schema.models import Message
from schema.states import Channel, MessageState
from worker.catalogue import Code
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.errors import ConfigurationError
from worker.policy.merchants import provider_order
from worker.policy.pricing import repriced_cost
from worker.policy.quota import billed_minutes
from worker.policy.transitions import MESSAGE_COLUMNS, transition, utcnow
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

__all__ = ["Pending", "adopt_stale_dispatching", "pending_batch", "settle", "Settled", "SweepCounts", "sweep"]

PENDING = [MessageState.AMBIGUOUS, MessageState.SENT]
#: A message that moves on (sent again, or found at the provider) starts its lookups afresh: the backoff of its
#: previous phase says nothing about how soon this one's report is due.
FRESH_LOOKS: dict[str, Any] = {"reconcile_attempts": 0, "reconcile_after": None}


@dataclass(frozen=True)
class Pending:
    id: str
    status: MessageState
    provider: str | None
    provider_ref: str | None
    merchant_id: int | None
    channel: str
    message_type: str
    units: int
    #: When the message became due (its schedule, else its creation): the clock of the maximum age.
    due_at: dt.datetime
    #: Dispatch attempts when it was read: a resend is allowed only if no dispatch happened since.
    dispatch_attempts: int
    #: Lookups so far that settled nothing (the backoff grows with them).
    reconcile_attempts: int = 0


class Settled(StrEnum):
    """What one reconcile look did to a message; each value names its :class:`SweepCounts` field."""

    SETTLED = "settled"  #: FINAL from the provider's answer, or SENT (an AMBIGUOUS one the provider has)
    RESENT = "resent"  #: the provider proves it never got it: QUEUED again for dispatch
    EXPIRED = "expired"  #: no outcome within the maximum age
    UNKNOWN = "unknown"  #: nothing settled; looked at again after a backoff


@dataclass
class SweepCounts:
    examined: int = 0
    settled: int = 0
    resent: int = 0
    expired: int = 0
    unknown: int = 0


def adopt_stale_dispatching(settings: Settings, limit: int = 1000) -> int:
    """DISPATCHING longer than a task may live means the worker died and its task is gone (broker lost it):
    the provider may have the message, so it becomes AMBIGUOUS for reconcile, never QUEUED.

    A live dispatch ends within the task time limit (prefork) or the provider timeout (thread pools do not
    enforce time limits; drivers enforce their own timeout), so both plus a margin is safely past it.
    """
    cutoff = utcnow() - dt.timedelta(seconds=settings.task_time_limit + settings.provider_timeout + 15)
    with session_scope() as session:
        ids = session.scalars(select(Message.id).where(Message.status == MessageState.DISPATCHING.value,
                                                       Message.updated_at <= cutoff).limit(limit)).all()
        return sum(transition(session, mid, [MessageState.DISPATCHING], MessageState.AMBIGUOUS,
                              detail={"why": "stale DISPATCHING: its worker died"}) for mid in ids)


def pending_batch(settings: Settings, limit: int, *, before: dt.datetime | None = None) -> list[Pending]:
    """The oldest unsettled messages due for a look: AMBIGUOUS once ``ambiguous_grace`` has passed (a provider
    may need a moment before a lookup finds what it just received), SENT once its report is overdue.

    Only rows last touched before ``before`` qualify, so a sweep that loops never reads a row it already asked
    about: every look either settles the row or touches it.
    """
    now = utcnow()
    before = before or now
    due = or_(Message.reconcile_after.is_(None), Message.reconcile_after <= now)
    columns = (Message.id, Message.status, Message.provider, Message.provider_ref, Message.merchant_id,
               Message.channel, Message.message_type, Message.units,
               func.coalesce(Message.scheduled_at, Message.created_at).label("due_at"), Message.dispatch_attempts,
               Message.reconcile_attempts, Message.updated_at)
    # One oldest-first read per state, each a range of ix_messages_status_updated stopped at ``limit`` rows, then
    # the two merged: a batch costs the same with 1,000 or 100,000 due. One query with an OR over both states is
    # planned as a scan of every due row (or of the whole table) and a sort, once per batch of the sweep.
    cutoffs = {MessageState.AMBIGUOUS: min(before, now - dt.timedelta(seconds=settings.ambiguous_grace)),
               MessageState.SENT: min(before, now - dt.timedelta(seconds=settings.dlr_grace))}
    oldest = [select(*columns).where(Message.status == state.value, Message.updated_at < cutoff, due)
              .order_by(Message.updated_at).limit(limit).subquery() for state, cutoff in cutoffs.items()]
    merged = union_all(*(select(part) for part in oldest)).subquery()
    with session_scope() as session:
        rows = session.execute(select(merged).order_by(merged.c.updated_at).limit(limit)).all()
    return [Pending(id=r[0], status=MessageState(r[1]), provider=r[2], provider_ref=r[3], merchant_id=r[4],
                    channel=r[5], message_type=r[6], units=r[7], due_at=_aware(r[8]), dispatch_attempts=r[9],
                    reconcile_attempts=r[10])
            for r in rows]


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _ask(item: Pending, providers: list[Provider]) -> tuple[str | None, StatusResult]:
    """The first provider that knows the message, else NOT_FOUND only if every one proves it never got it."""
    answers = []
    for provider in providers:
        answer = provider.fetch_status(ProviderRef(item.id, item.provider_ref if provider.name == item.provider
                                                   else None))
        if answer.status not in (DeliveryStatus.NOT_FOUND, DeliveryStatus.UNKNOWN):
            return provider.name, answer
        answers.append(answer)
    if answers and all(a.status == DeliveryStatus.NOT_FOUND for a in answers):
        return None, answers[0]
    return None, StatusResult(DeliveryStatus.UNKNOWN)


def settle(item: Pending, providers: list[Provider], settings: Settings) -> Settled:
    """Settle one message from the providers' answer; returns what happened (for counting)."""
    name, answer = _ask(item, providers)
    with session_scope() as session:
        if answer.status == DeliveryStatus.DELIVERED:
            _deliver(session, item, name, answer)
            return Settled.SETTLED
        if answer.status == DeliveryStatus.FAILED:
            transition(session, item.id, PENDING, MessageState.FAILED, error_code=Code.PROVIDER_REJECTED.value,
                       error_detail=f"provider reported failure {answer.provider_code or ''}"[:500])
            return Settled.SETTLED
        if answer.status == DeliveryStatus.ACCEPTED and item.status == MessageState.AMBIGUOUS:
            transition(session, item.id, [MessageState.AMBIGUOUS], MessageState.SENT, provider=name,
                       provider_ref=answer.provider_ref, detail={"via": "reconcile"}, **FRESH_LOOKS)
            return Settled.SETTLED
        if lookup_permits_resend(answer.status) and item.status == MessageState.AMBIGUOUS:
            # Only if nothing dispatched it since we read it: an answer about an older attempt proves nothing.
            if transition(session, item.id, [MessageState.AMBIGUOUS], MessageState.QUEUED,
                          where=[MESSAGE_COLUMNS.dispatch_attempts == item.dispatch_attempts],
                          detail={"why": "provider proves it never received it"}, **FRESH_LOOKS):
                return Settled.RESENT
            return Settled.UNKNOWN
        return _expire_or_wait(session, item, settings)


def _deliver(session: Session, item: Pending, name: str | None, answer: StatusResult) -> None:
    """DELIVERED from a lookup; a call settles its real minutes (the move settles the balance), as a report would."""
    minutes = billed_minutes(answer.duration_seconds) if item.channel == Channel.VOICE.value else None
    detail = {"via": "reconcile"} | ({"durationSeconds": answer.duration_seconds} if minutes is not None else {})
    billed: dict[str, Any] = {} if minutes is None else {
        "units": minutes, "cost_micros": repriced_cost(get_settings().unit_prices, Channel.VOICE.value, minutes)}
    transition(session, item.id, PENDING, MessageState.DELIVERED, provider=name or item.provider,
               provider_ref=answer.provider_ref or item.provider_ref, detail=detail, **billed)


def _expire_or_wait(session: Session, item: Pending, settings: Settings) -> Settled:
    if utcnow() - item.due_at > dt.timedelta(seconds=settings.reconcile_max_age):
        transition(session, item.id, PENDING, MessageState.EXPIRED, error_code=Code.DELIVERY_EXPIRED.value)
        return Settled.EXPIRED
    now = utcnow()
    session.execute(update(Message).where(Message.id == item.id, Message.status == item.status.value)
                    .values(reconcile_attempts=Message.reconcile_attempts + 1, updated_at=now,
                            reconcile_after=now + backoff(item.reconcile_attempts + 1, settings)))
    return Settled.UNKNOWN


def backoff(looks: int, settings: Settings) -> dt.timedelta:
    """How long to wait after ``looks`` answers that settled nothing: doubling from the grace period, capped.

    A report that is hours late is not found sooner by asking every minute; this keeps a day of waiting to a
    few dozen lookups per message, so the provider's status API is not flooded by a large backlog.
    """
    base = max(1, min(settings.dlr_grace, settings.ambiguous_grace) or 1)
    return dt.timedelta(seconds=min(settings.reconcile_max_backoff, base * 2 ** min(looks - 1, 20)))


def sweep(settings: Settings, providers_for: Callable[[list[str]], list[Provider]], *, limit: int = 200,
          budget_seconds: float = 0.0, on_resend: Callable[[list[DispatchItem]], object] | None = None
          ) -> tuple[SweepCounts, list[DispatchItem]]:
    """One reconcile pass; returns the counts and the messages to publish again for dispatch.

    With ``budget_seconds`` it goes on message after message, batch after batch, until the backlog is drained or
    the budget is spent (checked per message: a slow provider cannot stretch one batch far past it), so the
    number settled per beat tick grows with the backlog. ``on_resend`` publishes each batch's resends as soon as
    the batch is done, so a sweep that dies later loses none of them.
    """
    counts, resend = SweepCounts(), []
    started = utcnow()

    def spent() -> bool:
        return budget_seconds > 0 and (utcnow() - started).total_seconds() >= budget_seconds

    adopt_stale_dispatching(settings)
    while True:
        batch = pending_batch(settings, limit, before=started)
        done: list[DispatchItem] = []
        for item in batch:
            counts.examined += 1
            outcome = settle(item, _providers(item, settings, providers_for), settings)
            setattr(counts, outcome.value, getattr(counts, outcome.value) + 1)
            if outcome is Settled.RESENT:
                done.append(DispatchItem(item.id, item.channel, item.message_type))
            if spent():
                break
        if done and on_resend is not None:
            on_resend(done)
        resend += done
        if len(batch) < limit or budget_seconds <= 0 or spent():
            return counts, resend


def _providers(item: Pending, settings: Settings, providers_for: Callable[[list[str]], list[Provider]]
               ) -> list[Provider]:
    """The providers to ask; none when its provider is no longer configured (the answer is then UNKNOWN, so the
    message backs off and finally expires instead of stopping every sweep at the same row)."""
    try:
        return providers_for(_names(item, settings))
    except ConfigurationError as err:
        log.error("cannot ask about message %s: %s", item.id, err)
        return []


def _names(item: Pending, settings: Settings) -> list[str]:
    if item.provider:
        return [item.provider]
    with session_scope() as session:
        if item.merchant_id is None:
            return [settings.default_provider]
        return provider_order(session, item.merchant_id, item.channel, item.message_type, settings.default_provider)
