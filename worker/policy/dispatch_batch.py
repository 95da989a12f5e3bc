"""Dispatch in batches, for campaigns: one claim statement, concurrent provider calls, one transaction to record.

The per-message semantics are those of :mod:`worker.policy.dispatch`: QUEUED -> DISPATCHING is claimed (and the
delivery counted) before any provider call and committed, so a worker that dies mid-batch leaves its messages
DISPATCHING, and the redelivered batch hands them to reconcile (AMBIGUOUS) instead of sending them again. Each
message gets at most one provider call per claim. What differs is the cost: one UPDATE claims the whole batch, the
calls run concurrently, and every outcome is recorded in one commit.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import BindParameter, Row, String, Table, bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from providers.base import OutboundMessage, SendOutcome, SendResult
from providers.outcomes import may_fail_over
from schema.models import MessageEvent
from schema.states import Channel, MessageState
from worker.bulk_copy import copy_rows
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.pii import storable_raw
from worker.policy.claims import Claim
from worker.policy.dispatch import (
    RECORD_ATTEMPTS,
    BulkSender,
    DispatchStep,
    Sender,
    _not_claimed,
    _record_in,
    crash_if,
)
from worker.policy.merchants import provider_order
from worker.policy.tendlc_send import refuse_unregistered_10dlc
from worker.policy.transitions import MESSAGE_COLUMNS, MESSAGES, check_move, utcnow
from worker.settings import Settings
from worker.transient import retry_transient
from worker.urgency import pace_bulk, recently_urgent, yield_to_urgent

__all__ = ["BatchOutcome", "dispatch_batch", "dispatch_claims", "claims_for"]

_pool_lock = threading.Lock()
_EVENTS = cast(Table, MessageEvent.__table__)
_pools: dict[int, ThreadPoolExecutor] = {}


@dataclass
class BatchOutcome:
    steps: Counter[str] = field(default_factory=Counter)
    #: The step each claimed message ended at (a caller that owns one of them answers for it).
    step_of: dict[str, DispatchStep] = field(default_factory=dict)
    #: Messages back in QUEUED because nothing left our side (providers unavailable or throttled): the single
    #: dispatch task takes them over, with its waiting rules.
    retry: list[DispatchItem] = field(default_factory=list)

    def merge(self, other: BatchOutcome) -> None:
        self.steps.update(other.steps)
        self.step_of.update(other.step_of)
        self.retry.extend(other.retry)


def _pool(size: int) -> ThreadPoolExecutor:
    with _pool_lock:
        if size not in _pools:
            _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="hexavox-batch")
        return _pools[size]


def dispatch_batch(message_ids: list[str], settings: Settings, sender: Sender, *, redelivered: bool = True,
                   threads: int = 32, bulk: BulkSender | None = None) -> BatchOutcome:
    """Take a batch of messages through dispatch once; safe to run again for the same ids (claims are conditional).

    With ``bulk``, the messages of one route go to its first provider in one request when it has a many-numbers
    call; those it answers UNAVAILABLE (nothing reached it) go through the route again one by one, with failover.

    While OTPs are about (:mod:`worker.urgency`), the batch goes in parts of HEXAVOX_URGENT_BULK_BATCH, each claimed,
    sent and recorded on its own, and every step first waits (bounded) for the OTPs in flight: each part keeps the
    guarantees of a whole batch, since a claim is per message.
    """
    outcome = BatchOutcome()
    done = 0
    while done < len(message_ids):
        size = settings.urgent_bulk_batch if recently_urgent(settings) else len(message_ids) - done
        part, done = message_ids[done:done + size], done + size
        yield_to_urgent(settings)
        claims = _claim_many(part, settings.default_provider, settings.max_delivery_attempts)
        claimed = {claim.message.message_id for claim in claims}
        for mid in part:
            if mid not in claimed:
                outcome.steps[_not_claimed(mid, settings.max_delivery_attempts, redelivered).value] += 1
        outcome.merge(dispatch_claims(claims, settings, sender, threads=threads, bulk=bulk, yielding=True))
    return outcome


def dispatch_claims(claims: list[Claim], settings: Settings, sender: Sender, *, threads: int = 32,
                    bulk: BulkSender | None = None, yielding: bool = False) -> BatchOutcome:
    """Send and record messages already claimed (DISPATCHING, committed): at most one provider call each.

    Shared by the campaign batch task and by coalescing (:mod:`worker.policy.coalesce`): whoever claimed the
    messages, a crash from here on leaves them DISPATCHING, which only reconcile may settle. ``yielding`` (campaign
    batches): the provider call and the record first wait, bounded, for OTPs in flight, and sends keep to
    HEXAVOX_BULK_RATE.
    """
    outcome = BatchOutcome()
    if refused := refuse_unregistered_10dlc(claims):  # a 10DLC campaign suspended while the messages waited
        outcome.steps[DispatchStep.FAILED.value] += len(refused)
        outcome.step_of.update(dict.fromkeys(refused, DispatchStep.FAILED))
        claims = [claim for claim in claims if claim.message.message_id not in refused]
    if not claims:
        return outcome
    crash_if(settings, "before_provider_call")
    if yielding:
        pace_bulk(settings, len(claims))
        yield_to_urgent(settings)
    results = _send_all(claims, sender, bulk, _pool(threads))
    crash_if(settings, "after_provider_call")
    if yielding:
        yield_to_urgent(settings)
    recorded = retry_transient(lambda: _record_all(list(zip(claims, results, strict=True))),
                               attempts=RECORD_ATTEMPTS, base=0.1, cap=5.0,
                               what=f"recording the provider's answers for a batch of {len(claims)}")
    outcome.merge(recorded)
    crash_if(settings, "after_record")
    return outcome


def _record_all(pairs: list[tuple[Claim, SendResult]]) -> BatchOutcome:
    """Every answer of the batch in one transaction; run again as a whole when the transaction was undone."""
    outcome = BatchOutcome()
    with session_scope() as session:
        sent = _record_sent(session, pairs)
        outcome.steps[DispatchStep.SENT.value] += len(sent)
        outcome.step_of.update(dict.fromkeys(sent, DispatchStep.SENT))
        for claim, result in pairs:
            if claim.message.message_id in sent:
                continue
            step = _record_in(session, claim, result)
            outcome.steps[step.value] += 1
            outcome.step_of[claim.message.message_id] = step
            if step in (DispatchStep.RETRY, DispatchStep.THROTTLED):
                outcome.retry.append(DispatchItem(claim.message.message_id, claim.message.channel.value,
                                                  claim.message.message_type))
    return outcome


def _record_sent(session: Session, pairs: list[tuple[Claim, SendResult]]) -> set[str]:
    """DISPATCHING -> SENT for every plainly accepted message with one UPDATE and one history INSERT (PostgreSQL).

    The same change and history row :func:`worker.policy.transitions.transition` makes one by one; SENT is not
    final, so no callback is due. Messages no longer DISPATCHING are left out, as a transition would leave them.
    Other outcomes, and every outcome on SQLite, are recorded one by one by the caller.
    """
    accepted = [(c, r) for c, r in pairs if r.outcome is SendOutcome.ACCEPTED and not r.final]
    if not accepted or session.get_bind().dialect.name != "postgresql":
        return set()
    check_move([MessageState.DISPATCHING], MessageState.SENT)
    now, c = utcnow(), MESSAGE_COLUMNS
    rows = func.unnest(_array("mids", [claim.message.message_id for claim, _ in accepted]),
                       _array("provs", [result.provider for _, result in accepted]),
                       _array("refs", [result.provider_ref for _, result in accepted])
                       ).table_valued("mid", "prov", "ref").render_derived("sent")
    done = set(session.scalars(update(MESSAGES).where(c.id == rows.c.mid, c.status == MessageState.DISPATCHING.value)
                               .values(status=MessageState.SENT.value, updated_at=now, provider=rows.c.prov,
                                       provider_ref=rows.c.ref).returning(c.id)).all())
    history = [{"message_id": claim.message.message_id, "from_state": MessageState.DISPATCHING.value,
                "to_state": MessageState.SENT.value, "at": now,
                "detail": {"providerCode": result.provider_code, "final": False, "raw": storable_raw(result.raw)}}
               for claim, result in accepted if claim.message.message_id in done]
    copy_rows(session, _EVENTS, history)
    return done


def _array(name: str, items: list[str | None]) -> BindParameter[Sequence[str]]:
    """A list bound as one array parameter: unnested, the statement text is the same whatever the batch size (a
    VALUES list is rendered and bound value by value)."""
    return bindparam(name, items, type_=ARRAY(String()))


def _send_all(claims: list[Claim], sender: Sender, bulk: BulkSender | None, pool: ThreadPoolExecutor
              ) -> list[SendResult]:
    """Every claim's result, in order: one bulk request per route where possible, else concurrent single calls."""
    results: dict[str, SendResult] = {}
    if bulk is not None:
        routes: dict[tuple[str, ...], list[Claim]] = {}
        for claim in claims:
            routes.setdefault(tuple(claim.providers), []).append(claim)
        for names, group in routes.items():
            answers = _bulk_send(bulk, group, list(names))
            if answers is not None:
                results.update(answers)
    single = [c for c in claims if c.message.message_id not in results]
    results.update(zip([c.message.message_id for c in single], pool.map(lambda c: _send(sender, c), single),
                       strict=True))
    return [results[c.message.message_id] for c in claims]


def _bulk_send(bulk: BulkSender, group: list[Claim], names: list[str]) -> dict[str, SendResult] | None:
    """The route's bulk answers; UNAVAILABLE ones are left out when another provider may take them (failover)."""
    try:
        answers = bulk([c.message for c in group], names)
    except Exception as err:  # as for single calls: the request may have left, so AMBIGUOUS, never resent
        return {c.message.message_id: SendResult.ambiguous(names[0], f"{type(err).__name__} during the bulk call")
                for c in group}
    if answers is None or len(answers) != len(group):
        return None
    failover = len(names) > 1
    return {c.message.message_id: answer for c, answer in zip(group, answers, strict=True)
            if not (failover and may_fail_over(answer.outcome))}


def _send(sender: Sender, claim: Claim) -> SendResult:
    """One provider call; an unexpected error may have happened after the request left: AMBIGUOUS, never resent."""
    try:
        return sender(claim.message, claim.providers)
    except Exception as err:  # the drivers answer with outcomes; this is a bug or an unforeseen library error
        name = claim.providers[0] if claim.providers else "unknown"
        return SendResult.ambiguous(name, f"{type(err).__name__} during the provider call"[:300])


def _claim_many(message_ids: list[str], default_provider: str, max_attempts: int) -> list[Claim]:
    """QUEUED -> DISPATCHING for every claimable message of the batch in one UPDATE, with their history rows."""
    if not message_ids:
        return []
    check_move([MessageState.QUEUED], MessageState.DISPATCHING)
    c, now = MESSAGE_COLUMNS, utcnow()
    with session_scope() as session:
        rows = session.execute(
            update(MESSAGES).where(c.id.in_(message_ids), c.status == MessageState.QUEUED.value,
                                   c.dispatch_attempts < max_attempts)
            .values(status=MessageState.DISPATCHING.value, updated_at=now, dispatch_attempts=c.dispatch_attempts + 1)
            .returning(c.id, c.merchant_id, c.channel, c.message_type, c.recipient, c.body, c.sender, c.subject,
                       c.options, c.units)).all()
        return claims_for(session, rows, default_provider, now)


def claims_for(session: Session, rows: Sequence[Row[Any]], default_provider: str, now: dt.datetime) -> list[Claim]:
    """The claims of rows just moved QUEUED -> DISPATCHING (columns as :func:`_claim_many` returns them), with
    their history rows written in the claim's transaction and each route read once per (merchant, channel, type).
    """
    copy_rows(session, _EVENTS, [{"message_id": r.id, "from_state": MessageState.QUEUED.value,
                                  "to_state": MessageState.DISPATCHING.value, "at": now, "detail": {}}
                                 for r in rows])
    orders: dict[tuple[int, str, str], list[str]] = {}
    claims = []
    for r in rows:
        key = (r.merchant_id, r.channel, r.message_type)
        if key not in orders:
            orders[key] = provider_order(session, r.merchant_id, r.channel, r.message_type, default_provider)
        message = OutboundMessage(message_id=r.id, channel=Channel(r.channel), message_type=r.message_type,
                                  recipient=r.recipient, body=r.body, sender=r.sender, subject=r.subject,
                                  options=dict(r.options))
        claims.append(Claim(message, list(orders[key]), r.merchant_id, r.units))
    return claims
