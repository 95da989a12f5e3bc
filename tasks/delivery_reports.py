"""The task that applies inbound delivery reports, enqueued by the webhook receiver (worker/web.py).

The receiver answers the provider at once and hands the parsed events over; the state machine work happens here,
on the callbacks queue, away from OTP dispatch. All logic lives in worker/policy/delivery_reports.py.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from worker.celery_app import app
from worker.policy.delivery_reports import apply_batch
from worker.sealing import internal_task
from worker.task_names import APPLY_REPORTS

MAX_RETRIES = 8


@internal_task(app, APPLY_REPORTS, bind=True, max_retries=MAX_RETRIES)
def apply_reports(self: Task, provider_name: str, events_json: list[dict[str, Any]]) -> dict[str, int]:
    """Apply each event in its own transaction; the count per outcome. A database outage retries the whole
    batch with backoff: every event is idempotent, so the ones already applied change nothing the second time."""
    try:
        return apply_batch(provider_name, events_json)
    except OperationalError as err:
        raise self.retry(countdown=min(300.0, 2.0 ** self.request.retries + random.random()), exc=err) from err
