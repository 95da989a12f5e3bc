"""The dispatch task: one message through its providers, at most once, settling ambiguity via reconcile."""

from __future__ import annotations

import logging
import random
import time

from celery import Task

from worker.celery_app import app, redelivered
from worker.policy.dispatch import DispatchStep, dispatch_message, give_up_unavailable
from worker.policy.dispatch_batch import dispatch_batch as run_batch
from worker.queues import queue_for_message
from worker.sealing import internal_task
from worker.sending import provider_bulk_sender, provider_sender
from worker.settings import get_settings
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
    """
    settings = get_settings()
    try:
        step = dispatch_message(message_id, settings, provider_sender(settings), redelivered=redelivered(self))
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
