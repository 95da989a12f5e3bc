"""The dispatch task: one message through its providers, at most once, settling ambiguity via reconcile."""

from __future__ import annotations

import logging
import random
import time

from celery import Task

from schema.states import MessageState
from worker.celery_app import app, redelivered
from worker.dispatch_item import DispatchItem
from worker.policy.coalesce import adopt_claim_mates, coalesce_dispatch
from worker.policy.dispatch import DispatchStep, Sender, dispatch_message, give_up_unavailable
from worker.policy.dispatch_batch import dispatch_batch as run_batch
from worker.queues import may_coalesce, queue_for_message
from worker.sealing import internal_task
from worker.sending import provider_bulk_sender, provider_sender
from worker.settings import Settings, get_settings
from worker.task_names import DISPATCH, DISPATCH_BATCH
from worker.transient import is_transient

log = logging.getLogger(__name__)

#: Seconds between retries while every provider is unavailable, throttled or open-circuited: doubling up to this cap.
MAX_RETRY_DELAY = 30.0


@internal_task(app, DISPATCH, bind=True, max_retries=None)
def dispatch(self: Task, message_id: str, waiting_since: float | None = None) -> str:
    """Retries only when nothing left our side (every provider unavailable or throttled); never on ambiguity.

    The retry budget is time, not a count. Our own throughput limit only delays a message (THROTTLED waits for
    its slot); providers that stay unavailable or open-circuited fail it with E816 once it waited
    HEXAVOX_UNAVAILABLE_GIVE_UP seconds since the first such answer (``waiting_since``, carried from retry to
    retry). The countdown stays far below the visibility timeout, so Redis never redelivers a waiting retry.

    When its queue is deep, a first try takes the messages waiting behind its own with it (see
    :mod:`worker.policy.coalesce`); a retry, and OTP always, takes its own message alone.
    """
    settings = get_settings()
    try:
        step = _dispatch(self, message_id, settings, provider_sender(settings),
                         coalesce=waiting_since is None and not self.request.retries)
    except Exception as err:
        if not is_transient(err):
            raise
        # PostgreSQL or Redis unreachable before anything was sent (or after the answer was recorded, or kept
        # trying to): every step is a conditional UPDATE, so another run can only finish what this one began.
        log.warning("dispatch of message %s met %s; trying again later", message_id, type(err).__name__)
        raise self.retry(countdown=_delay(self.request.retries), kwargs={"waiting_since": waiting_since}) from err
    if step == DispatchStep.RETRY:
        waiting_since = waiting_since or time.time()
        if give_up_unavailable(message_id, settings.unavailable_give_up, waiting_since):
            return DispatchStep.FAILED.value
    if step in (DispatchStep.RETRY, DispatchStep.THROTTLED):
        raise self.retry(countdown=_delay(self.request.retries), kwargs={"waiting_since": waiting_since})
    return step.value


def _dispatch(task: Task, message_id: str, settings: Settings, sender: Sender, *, coalesce: bool) -> DispatchStep:
    """The message's step: coalesced with the messages waiting behind it where it may be, else on its own.

    A coalescing claim that did not take the message tells why: another task took or settled it (nothing to do:
    one statement in all), or it must go alone (not an SMS TXN or MKT, at its attempt cap, or still to be handed
    to reconcile by a redelivered copy): the single path then decides exactly as it always does. A redelivered copy
    that hands its message to reconcile hands the messages claimed with it too (their claimer died with it).
    """
    again = redelivered(task)
    queue = (task.request.delivery_info or {}).get("routing_key")
    if coalesce and settings.dispatch_coalesce > 1 and may_coalesce(queue) and _postgresql(settings):
        done = coalesce_dispatch(message_id, settings, sender, bulk=provider_bulk_sender(settings),
                                 threads=settings.dispatch_batch_threads)
        _hand_back([item for item in done.outcome.retry if item.message_id != message_id], done.outcome.step_of)
        if done.own is not None:
            return done.own
        if done.own_status != MessageState.QUEUED.value and not again:
            return DispatchStep.SKIPPED
        step = dispatch_message(message_id, settings, sender, redelivered=again)
        if step == DispatchStep.REDELIVERED and done.own_status == MessageState.DISPATCHING.value and done.own_at:
            adopt_claim_mates(message_id, done.own_at)  # its worker died holding a coalesced batch
        return step
    return dispatch_message(message_id, settings, sender, redelivered=again)


def _hand_back(items: list[DispatchItem], steps: dict[str, DispatchStep]) -> None:
    """Coalesced messages back in QUEUED (providers unavailable or throttled) get a dispatch task of their own.

    Their first tasks may already have run and found them DISPATCHING. An unavailable one's task carries the
    moment the outage was first met, so it waits and gives up (E816) like any message, and, as a retry, goes alone.
    A copy whose first task is still queued is harmless: every claim is conditional. A publish that fails is
    logged, as intake's are: the messages are QUEUED in the database, which the outbox relay reads.
    """
    now = time.time()
    try:
        for message_id, channel, message_type in items:
            waiting = {"waiting_since": now} if steps.get(message_id) == DispatchStep.RETRY else {}
            dispatch.apply_async(args=[message_id], kwargs=waiting, countdown=1.0 + random.random(),
                                 queue=queue_for_message(channel, message_type))
    except Exception:  # broker down: they are QUEUED, and the outbox relay publishes them again
        log.exception("handing %d coalesced messages back to dispatch failed; the outbox relay will", len(items))


def _postgresql(settings: Settings) -> bool:
    """Coalescing's claim is PostgreSQL's; the embedded mode (SQLite) sends one message a task."""
    return settings.database_url.startswith("postgresql")


def _delay(retries: int) -> float:
    """Seconds before the next try: doubling up to MAX_RETRY_DELAY, with jitter so retries do not march together."""
    return min(MAX_RETRY_DELAY, 2.0 ** min(retries, 8)) * (0.5 + random.random() / 2)


@internal_task(app, DISPATCH_BATCH, bind=True)
def dispatch_batch(self: Task, message_ids: list[str]) -> dict[str, int]:
    """A batch of campaign messages: one claim, concurrent provider calls, one commit for every outcome.

    Messages that found every provider unavailable or throttled go back to QUEUED and are handed to the single
    dispatch task, which waits and gives up exactly as it does for any message.
    """
    settings = get_settings()
    outcome = run_batch(message_ids, settings, provider_sender(settings), redelivered=redelivered(self),
                        threads=settings.dispatch_batch_threads, bulk=provider_bulk_sender(settings))
    for message_id, channel, message_type in outcome.retry:
        dispatch.apply_async(args=[message_id], countdown=1.0 + random.random(),
                             queue=queue_for_message(channel, message_type))
    return dict(outcome.steps)
