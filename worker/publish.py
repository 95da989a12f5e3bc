"""Publishing the service's own follow-up work (dispatch) after the intake transaction committed.

A failed publish is logged, not raised: the message is already QUEUED in the database, and
the outbox relay re-publishes QUEUED messages that nobody picked up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from worker.queues import queue_for_message

__all__ = ["publish_dispatch", "DISPATCH_TASK"]

log = logging.getLogger(__name__)
DISPATCH_TASK = "hexavox.internal.dispatch"


def publish_dispatch(items: Iterable[tuple[str, str, str]]) -> int:
    """Enqueue dispatch for (message id, channel, type) items; returns how many were published."""
    from worker.celery_app import app

    published = 0
    try:
        with app.producer_or_acquire() as producer:
            for message_id, channel, message_type in items:
                app.send_task(DISPATCH_TASK, args=[message_id], queue=queue_for_message(channel, message_type),
                              producer=producer)
                published += 1
    except Exception:  # broker down: the relay covers it
        log.exception("publishing dispatch failed after %d; the outbox relay will re-publish", published)
    return published
