"""The baseline B0: a Celery no-op task that only counts itself (one Redis INCR), with our reliability settings."""

from __future__ import annotations

import os

import redis
from celery import Celery

app = Celery("bench-noop", broker=os.environ["BENCH_BROKER_URL"])
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True, task_acks_late=True,
                worker_prefetch_multiplier=1, task_default_queue="bench", worker_hijack_root_logger=False)
_counter = redis.Redis.from_url(os.environ["BENCH_COUNTER_URL"])


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]  # Celery ships no types
def noop(_index: int) -> None:
    _counter.incr("bench:done")
