"""Outbound dlrUrl callbacks, driven by celery beat every 10 s; rows are leased in the database (S1/S2).

Each run claims batches of :data:`POOL_SIZE` due callbacks and sends them on a small thread pool (the
work is waiting on merchants' servers). It stops when a batch comes back short or when another batch
might not finish within the task time limit; whatever is left is picked up by the next beat.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from worker.celery_app import app
from worker.policy.callbacks_out import SEND_TIMEOUT, DueCallback, claim_due, send_one
from worker.sealing import internal_task
from worker.settings import Settings, get_settings
from worker.task_names import DELIVER_CALLBACKS

log = logging.getLogger(__name__)

#: Concurrent attempts per task run, and rows claimed per batch.
POOL_SIZE = 16
#: Seconds kept free before the task time limit (soft limit is 5 s before it) when deciding on another batch.
_MARGIN = 10.0
_OUTCOMES = ("delivered", "retry", "refused", "failed", "error")


@internal_task(app, DELIVER_CALLBACKS)
def deliver_callbacks() -> dict[str, int]:
    """Send due callbacks; the counts of claimed rows and of each outcome."""
    settings = get_settings()
    last_start = time.monotonic() + settings.task_time_limit - SEND_TIMEOUT - _MARGIN
    counts: Counter[str] = Counter({name: 0 for name in ("claimed", *_OUTCOMES)})
    with ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="callback") as pool:
        while True:
            batch = claim_due(POOL_SIZE)
            counts["claimed"] += len(batch)
            counts.update(_send_batch(pool, batch, settings))
            if len(batch) < POOL_SIZE or time.monotonic() >= last_start:
                break
    return dict(counts)


def _send_batch(pool: ThreadPoolExecutor, batch: list[DueCallback], settings: Settings) -> list[str]:
    """Outcomes of one batch; an unexpected error (database down) counts as 'error', the lease retries the row."""
    futures = [pool.submit(send_one, due, settings) for due in batch]
    outcomes: list[str] = []
    for due, future in zip(batch, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception:
            log.exception("callback %s: attempt not recorded", due.id)
            outcomes.append("error")
    return outcomes
