"""Coalescing a deep dispatch queue: one dispatch task sends its own message and others waiting behind it.

Every single TXN or MKT SMS still has its own dispatch task. When such a task runs while other messages of the same
channel and type have been QUEUED for at least ``HEXAVOX_DISPATCH_COALESCE_MIN_AGE`` seconds (their tasks still in
the broker: the queue is deep), it claims its own message and up to ``HEXAVOX_DISPATCH_COALESCE`` - 1 of the waiting
ones (the far end of the backlog first, see ``_CLAIM``) with ONE statement, sends them through the batch code (one
bulk request where the route's provider has one, else concurrent single calls) and records every outcome in one
transaction. The coalesced messages' own tasks later find them no longer QUEUED and stop after one statement.

At most once, as for every dispatch: the claim moves QUEUED -> DISPATCHING (counting the delivery) and commits
before any provider call, and only QUEUED rows are taken, so a message is claimed by exactly one task, and a row
another transaction holds is skipped (``SKIP LOCKED``), never waited for. A worker that dies after the claim leaves
its messages DISPATCHING:

* its own message's task is redelivered (late acknowledgement) and hands the message to reconcile (AMBIGUOUS);
* a coalesced message's own task is a fresh copy that cannot tell a dead claimer from a live one, so it leaves the
  message alone; the reconcile sweep's stale-DISPATCHING takeover
  (:func:`worker.policy.reconcile.adopt_stale_dispatching`) then makes it AMBIGUOUS once no live task can still
  hold it, and reconcile asks the provider: settled from its answer, or sent again only on proof it never got it.

Why only SMS TXN and MKT: OTP must stay one small fast task (it never waits behind a batch, nor holds others up),
and voice calls may need an agent rung just before the call, which only the single path does. The statement is
PostgreSQL's (``FOR UPDATE SKIP LOCKED`` and a data-modifying WITH); elsewhere (the embedded SQLite mode) every
task takes its own message alone.

A task already retrying (``waiting_since``: its providers were unavailable or throttled) takes its own message
alone, and coalesced messages that end so are handed back to single dispatch tasks (see :mod:`tasks.dispatch`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import text

from schema.states import Channel, MessageState, SmsType
from worker.db import session_scope
from worker.policy.claims import Claim
from worker.policy.dispatch import BulkSender, DispatchStep, Sender
from worker.policy.dispatch_batch import BatchOutcome, claims_for, dispatch_claims
from worker.policy.transitions import MESSAGE_COLUMNS, MESSAGES, check_move, transition_many, utcnow
from worker.settings import Settings

__all__ = ["COALESCED_CHANNELS", "COALESCED_TYPES", "Coalesced", "adopt_claim_mates", "claim_coalesced",
           "coalesce_dispatch"]

#: What may be coalesced: the channel and the types (a message is coalesced only with its own channel and type).
COALESCED_CHANNELS: tuple[str, ...] = (Channel.SMS.value,)
COALESCED_TYPES: tuple[str, ...] = (SmsType.TXN.value, SmsType.MKT.value)

#: How many of the most recent eligible QUEUED rows, per message of the batch, one claim looks at (any channel
#: and type: those of its own are taken from them).
SCAN_FACTOR = 4

#: The claim moves QUEUED -> DISPATCHING with its own statement; the state machine must allow it.
check_move([MessageState.QUEUED], MessageState.DISPATCHING)

#: One statement: lock the task's own message if it is QUEUED and may be coalesced (waiting for a lock another
#: claim holds on it, then re-checking: no deadlock, as this is the only lock it waits for and it is taken first);
#: take up to :more of the QUEUED messages of its channel and type that waited since :cutoff, the most recent of
#: them first, skipping rows another transaction holds; claim them all; and say what the own message's state was
#: (the statement's snapshot), so a task whose message is already taken stops here.
#:
#: Its cost stays bounded whatever the backlog: nothing but the own row is read unless the own message is claimable
#: (``EXISTS (SELECT 1 FROM own)`` gates the rest), and only the :window (SCAN_FACTOR x batch size) most recent
#: eligible QUEUED rows of any kind are looked at (``ix_messages_status_updated``, backwards), so a TXN task behind
#: a campaign's 20,000 waiting MKT messages reads a few hundred rows, not all of them, and may take none.
#:
#: Why the most recent of the waiting ones: the broker hands tasks out oldest first, so the oldest messages' own
#: tasks are the ones running or about to run on the other threads; taking those would only make those tasks find
#: nothing to do, and the next batch would start only once all of them had run. Taking from the far end of the
#: backlog instead, each task at the head sends a batch nobody else is about to take, and the whole backlog goes
#: out after about (depth / batch size) tasks; the tasks left behind stop after one statement each.
_CLAIM = text(f"""
WITH own AS MATERIALIZED (
    SELECT id, channel, message_type FROM {MESSAGES.name}
    WHERE id = :own AND status = :queued AND dispatch_attempts < :max_attempts
      AND channel = ANY(:channels) AND message_type = ANY(:types)
    FOR UPDATE
), waiting AS MATERIALIZED (
    SELECT m.id FROM {MESSAGES.name} m
    WHERE m.id IN (SELECT r.id FROM {MESSAGES.name} r
                   WHERE EXISTS (SELECT 1 FROM own) AND r.status = :queued AND r.updated_at <= :cutoff
                   ORDER BY r.updated_at DESC
                   LIMIT :window)
      AND m.status = :queued AND m.id <> :own AND m.dispatch_attempts < :max_attempts
      AND m.channel = (SELECT channel FROM own) AND m.message_type = (SELECT message_type FROM own)
    ORDER BY m.updated_at DESC
    LIMIT :more
    FOR UPDATE OF m SKIP LOCKED
), claimed AS (
    UPDATE {MESSAGES.name} SET status = :dispatching, updated_at = :now, dispatch_attempts = dispatch_attempts + 1
    WHERE id IN (SELECT id FROM own UNION ALL SELECT id FROM waiting) AND status = :queued
    RETURNING id, merchant_id, channel, message_type, recipient, body, sender, subject, options, units
)
SELECT o.status AS own_status, o.updated_at AS own_at, claimed.*
FROM (SELECT 1) AS one LEFT JOIN {MESSAGES.name} o ON o.id = :own LEFT JOIN claimed ON true
""")


@dataclass
class Coalesced:
    """What one coalesced dispatch did: ``own`` is None when its own message was not claimed here."""

    own: DispatchStep | None = None
    #: The own message's state before the claim (None: no such message); tells a taken message from one to send alone.
    own_status: str | None = None
    #: When the own message last changed before the claim: for one found DISPATCHING, the moment it was claimed.
    own_at: dt.datetime | None = None
    #: Every message the claim took (its own included) and how each ended.
    outcome: BatchOutcome = field(default_factory=BatchOutcome)


def claim_coalesced(message_id: str, settings: Settings, *, size: int, min_age: float
                    ) -> tuple[list[Claim], Coalesced]:
    """Claim the message and up to ``size - 1`` waiting ones in one statement (own first); and its prior state.

    Returns no claim when the message is not QUEUED, may not be coalesced (another channel or type), reached the
    attempt cap, or another claim took it while this one waited for its lock. The claims commit before returning.
    """
    now = utcnow()
    params = {"own": message_id, "queued": MessageState.QUEUED.value, "dispatching": MessageState.DISPATCHING.value,
              "max_attempts": settings.max_delivery_attempts, "channels": list(COALESCED_CHANNELS),
              "types": list(COALESCED_TYPES), "cutoff": now - dt.timedelta(seconds=min_age),
              "more": max(0, size - 1), "window": SCAN_FACTOR * max(1, size), "now": now}
    with session_scope() as session:
        rows = session.execute(_CLAIM, params).all()
        before = Coalesced(own_status=rows[0].own_status, own_at=rows[0].own_at) if rows else Coalesced()
        claimed = [row for row in rows if row.id is not None]
        claims = claims_for(session, claimed, settings.default_provider, now)
    claims.sort(key=lambda claim: claim.message.message_id != message_id)
    return claims, before


def coalesce_dispatch(message_id: str, settings: Settings, sender: Sender, *, bulk: BulkSender | None = None,
                      threads: int = 32) -> Coalesced:
    """Dispatch the message together with the messages waiting behind it, when it may be coalesced.

    ``own`` is the message's step when this claim took it; otherwise the caller decides from ``own_status``:
    a message that is not QUEUED was taken (or settled) by another task, one still QUEUED goes the single path.
    """
    claims, done = claim_coalesced(message_id, settings, size=settings.dispatch_coalesce,
                                   min_age=settings.dispatch_coalesce_min_age)
    if not claims or claims[0].message.message_id != message_id:
        return done
    done.outcome = dispatch_claims(claims, settings, sender, threads=threads, bulk=bulk)
    done.own = done.outcome.step_of.get(message_id, DispatchStep.SKIPPED)
    return done


def adopt_claim_mates(message_id: str, claimed_at: dt.datetime) -> list[str]:
    """Hand to reconcile (AMBIGUOUS) the messages claimed together with ``message_id``, whose claimer died.

    Called when the message's own task came back redelivered and found it DISPATCHING: the worker that ran that
    task died holding it, and with it the coalesced messages its claim took. Their own tasks, fresh copies, cannot
    tell a dead claimer from a live one, so without this they would wait for the stale-DISPATCHING takeover. One
    claim statement gives every row it takes the same ``updated_at``, which nothing else changes while they are
    DISPATCHING (index ``ix_messages_status_updated``). Should another claim share that moment, its messages become
    AMBIGUOUS too: reconcile then settles them from the provider's answer, and their sender's record, conditional on
    DISPATCHING, changes nothing: never a second send.
    """
    c = MESSAGE_COLUMNS
    with session_scope() as session:
        return transition_many(session, (c.updated_at == claimed_at) & (c.id != message_id),
                               [MessageState.DISPATCHING], MessageState.AMBIGUOUS,
                               detail={"why": "claimed with a redelivered message: the provider may have it"})
