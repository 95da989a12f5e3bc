"""Publishing the service's own follow-up work (dispatch) after the intake transaction committed.

A failed publish is logged, not raised: the message is already QUEUED in the database, and
the outbox relay re-publishes QUEUED messages that nobody picked up.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

from worker.dispatch_item import DispatchItem
from worker.queues import queue_for_message
from worker.task_names import CAMPAIGN_CHUNK, DISPATCH_BATCH
from worker.task_names import DISPATCH as DISPATCH_TASK

__all__ = ["publish_dispatch", "publish_dispatch_batches", "publish_campaign_chunks",
           "broker_epoch", "DISPATCH_TASK", "BROKER_EPOCH_KEY"]

log = logging.getLogger(__name__)
#: A key the relay keeps in a Redis broker's own database: when it is gone, so is everything queued with it.
BROKER_EPOCH_KEY = "hexavox:broker-epoch"
#: Seconds between two checks of the epoch marker by one process's publishes.
STAMP_EVERY = 1.0
_stamped: dict[str, float] = {}


def publish_dispatch(items: Iterable[DispatchItem]) -> int:
    """Enqueue dispatch for (message id, channel, type) items; returns how many were published."""
    from worker.celery_app import app

    items = list(items)
    if not items:
        return 0
    published = 0
    try:
        _stamp_epoch(app.conf.broker_url or "")
        with app.producer_or_acquire() as producer:
            for message_id, channel, message_type in items:
                app.send_task(DISPATCH_TASK, args=[message_id], queue=queue_for_message(channel, message_type),
                              producer=producer)
                published += 1
    except Exception:  # broker down: the relay covers it
        log.exception("publishing dispatch failed after %d; the outbox relay will re-publish", published)
    return published


def publish_dispatch_batches(items: list[DispatchItem], size: int) -> int:
    """Enqueue batch dispatch for (message id, channel, type) items of one campaign, ``size`` ids a task."""
    from worker.celery_app import app

    published = 0
    try:
        with app.producer_or_acquire() as producer:
            for first in range(0, len(items), size):
                batch = items[first:first + size]
                app.send_task(DISPATCH_BATCH, args=[[mid for mid, _, _ in batch]],
                              queue=queue_for_message(batch[0][1], batch[0][2]), producer=producer)
                published += len(batch)
    except Exception:  # broker down: the relay covers it
        log.exception("publishing batch dispatch failed after %d; the outbox relay will re-publish", published)
    return published


def publish_campaign_chunks(items: Iterable[tuple[int, int]]) -> int:
    """Enqueue campaign chunk tasks for (campaign id, cursor) items: ids only, never recipients (Flower shows args).

    A failed publish is logged: beat starts a RUNNING campaign whose cursor stays still again.
    """
    from worker.celery_app import app

    published = 0
    try:
        with app.producer_or_acquire() as producer:
            for campaign_id, cursor in items:
                app.send_task(CAMPAIGN_CHUNK, args=[campaign_id, cursor], producer=producer)
                published += 1
    except Exception:
        log.exception("publishing a campaign chunk failed; beat restarts stalled campaigns")
    return published


def _stamp_epoch(broker_url: str) -> None:
    """Start the broker's epoch before publishing into it, if a loss removed the marker (once a second at most).

    The relay copies what was QUEUED before the epoch began; dating the epoch from the first publish after a
    loss, not from the relay's next pass up to 15 s later, keeps it from copying what was published meanwhile
    into the new, intact queues. Skipping a stamp (cache, or Redis not answering) only moves the epoch later:
    more copies, never fewer.
    """
    now, last = time.monotonic(), _stamped.get(broker_url)
    if last is not None and now - last < STAMP_EVERY:
        return
    _stamped[broker_url] = now
    broker_epoch(broker_url)


def broker_epoch(broker_url: str) -> dt.datetime | None:
    """When a Redis broker's current data began: the queues hold nothing published before it.

    A marker key in the queues' own database carries the moment the relay first saw the broker without it;
    a restart without persistence, a flush or a failover to an empty replica removes it, and the next call
    starts a new epoch at once. Other brokers keep their queues on disk (RabbitMQ) or are local (the file
    broker): None, and so does a Redis that cannot be asked (the relay then relies on its stale delay).
    """
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):  # sentinel:// and others: not detected
        return None
    import redis

    now = dt.datetime.now(dt.UTC)
    try:
        client = redis.Redis.from_url(broker_url, socket_timeout=5)
        try:
            if client.set(BROKER_EPOCH_KEY, now.isoformat(), nx=True):
                return now
            began = client.get(BROKER_EPOCH_KEY)
        finally:
            client.close()
        text = began.decode() if isinstance(began, bytes) else began
        return dt.datetime.fromisoformat(text) if text else now
    except (redis.RedisError, ValueError) as err:
        # Not "lost just now": a Redis that keeps failing would then have every QUEUED message copied each pass.
        log.warning("could not read the broker's epoch marker (%s); relying on the stale delay", err)
        return None
