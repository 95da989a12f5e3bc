"""Inline dispatch: an intake job that admitted one OTP or TXN message sends it itself, right after its commit.

A second Celery hop (publish, broker, another task) buys nothing for a single urgent message and costs about as
much as the message's own work. The guarantees stay those of the dispatch task, because the same dispatch state
machine runs (:func:`worker.policy.dispatch.dispatch_message`), only after the intake transaction committed:

* The message is committed QUEUED first (the outbox row). If the process dies before the inline claim, the broker
  redelivers the intake job (it is acknowledged late) and this runs again, or the outbox relay publishes a
  dispatch task for it: whichever claims QUEUED -> DISPATCHING first sends, the other finds it claimed and does
  nothing.
* If the process dies after the claim, the message is DISPATCHING: the redelivered intake job hands it to
  reconcile (AMBIGUOUS), exactly as a redelivered dispatch task would, and never sends it again.
* When nothing left our side (every provider unavailable, or our throughput limit reached), or the inline
  attempt met an error, the message is published to its dispatch queue as before: that task waits and gives up
  by the usual rules, and finds the message already claimed or settled if the inline attempt got that far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from schema.models import Message
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.policy.dispatch import DispatchStep, Sender, dispatch_message
from worker.settings import Settings

__all__ = ["INLINE_TYPES", "dispatch_inline", "inline_candidate"]

log = logging.getLogger(__name__)
#: Message types an intake job sends itself when it admitted exactly one message.
INLINE_TYPES = frozenset({"OTP", "TXN"})
_STEPS = frozenset(step.value for step in DispatchStep)
#: What is left for the dispatch queue: (message id, channel, type) items, as intake hands them over.
Items = list[DispatchItem]


def inline_candidate(result: dict[str, Any], to_dispatch: Items, *, redelivered: bool) -> str | None:
    """The one message this job may dispatch itself, if any.

    A first delivery takes it from ``to_dispatch`` (QUEUED just now). A redelivered job takes it from its
    answer, whatever its state since: a worker that died mid-send left it DISPATCHING, and only this copy
    knows that it was the one sending.
    """
    if "campaign" in result:
        return None
    if len(to_dispatch) == 1:
        message_id, _channel, message_type = to_dispatch[0]
        return message_id if message_type in INLINE_TYPES else None
    rows = result.get("messages") or []
    if not redelivered or to_dispatch or len(rows) != 1 or not isinstance(rows[0], dict):
        return None
    answered = rows[0].get("messageId")
    if not isinstance(answered, str) or rows[0].get("status") != "QUEUED":
        return None
    with session_scope() as session:
        answered_type = session.scalar(select(Message.message_type).where(Message.id == answered))
    return answered if answered_type in INLINE_TYPES else None


def dispatch_inline(result: dict[str, Any], to_dispatch: Items, settings: Settings, sender: Callable[[], Sender], *,
                    redelivered: bool) -> Items:
    """Send the job's one OTP/TXN message now, after the intake commit; returns what still goes to the queue.

    ``sender`` builds the provider sender (only when a message is sent here).
    """
    if not settings.inline_dispatch:
        return to_dispatch
    message_id = inline_candidate(result, to_dispatch, redelivered=redelivered)
    if message_id is None:
        return to_dispatch
    started = time.perf_counter()
    try:
        step = dispatch_message(message_id, settings, sender(), redelivered=redelivered)
    except Exception as err:  # the queued copy finds the message where this attempt left it
        log.warning("inline dispatch of message %s met %s; handing it to the dispatch queue", message_id,
                    type(err).__name__)
        _observe(message_id, to_dispatch, "error", started)
        return to_dispatch
    _observe(message_id, to_dispatch, step.value, started)
    if step in (DispatchStep.RETRY, DispatchStep.THROTTLED):
        return to_dispatch  # the dispatch task waits for a provider or a slot, and gives up by its rules
    return [item for item in to_dispatch if item[0] != message_id]


def _observe(message_id: str, to_dispatch: Items, step: str, started: float) -> None:
    """Count the attempt in hexavox_dispatch_duration_seconds under the dispatch queue it stands in for."""
    from worker.queues import ALL_QUEUES, queue_for_message
    from worker.telemetry.metrics import DISPATCH_SECONDS, bounded

    kind = next(((channel, message_type) for mid, channel, message_type in to_dispatch if mid == message_id), None)
    queue = queue_for_message(*kind) if kind else None
    DISPATCH_SECONDS.labels(bounded(queue, ALL_QUEUES), bounded(step, _STEPS)).observe(time.perf_counter() - started)
