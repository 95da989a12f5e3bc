"""Celery signal handlers feeding metrics, log context and the Flower event masking; loaded by every worker and beat.

Celery imports this module when a worker or beat starts (``imports`` in :mod:`worker.celeryconfig`), so the
task code itself carries no telemetry calls. Per task the handlers cost a dict lookup, a timer and one
histogram observation; everything slow (database gauges) happens at scrape time in beat instead.

* ``worker_init`` / ``beat_init``: serve ``/metrics`` on ``HEXAVOX_METRICS_PORT`` (beat adds the state
  gauges of :mod:`worker.telemetry.state`); ``worker_process_shutdown`` retires a pool child's samples.
* ``task_prerun`` / ``task_postrun``: bind the log context; time intake and dispatch; count task states,
  refusals by code (logged at INFO, no traceback: a refusal is an answer, not an error), callback outcomes
  and reconcile results.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Final

from celery import signals

from worker.catalogue import Code
from worker.celery_typed import receiver
from worker.queues import ALL_QUEUES
from worker.telemetry import logs
from worker.telemetry.metrics import (
    CALLBACKS,
    DISPATCH_SECONDS,
    INTAKE_SECONDS,
    RECONCILE,
    REFUSALS,
    TASKS,
    bounded,
)

log = logging.getLogger(__name__)

DISPATCH_TASK: Final = "hexavox.internal.dispatch"
_CODES: Final = frozenset(code.value for code in Code)
_ANSWER_STATUSES: Final = frozenset({"ACCEPTED", "PARTIAL", "REFUSED"})
_STEPS: Final = frozenset({"SENT", "FAILED", "AMBIGUOUS", "RETRY", "THROTTLED", "SKIPPED", "REDELIVERED", "PARKED"})
_CALLBACK_OUTCOMES: Final = frozenset({"delivered", "retry", "refused", "failed", "error"})
_RECONCILE_RESULTS: Final = frozenset({"examined", "settled", "resent", "expired", "unknown"})
_CELERY_STATES: Final = frozenset({"SUCCESS", "FAILURE", "RETRY", "REJECTED", "IGNORED", "REVOKED"})
_started: dict[str, float] = {}


@functools.cache
def _task_names() -> frozenset[str]:
    """The registered ``hexavox.*`` names (fixed once the worker runs): the only values the task label takes."""
    from worker.celery_app import app

    return frozenset(name for name in app.tasks if name.startswith("hexavox."))


def _is_intake(name: str) -> bool:
    return name.startswith("hexavox.") and not name.startswith("hexavox.internal.")


@receiver(signals.task_prerun, weak=False, dispatch_uid="hexavox-telemetry-prerun")
def _prerun(task_id: str = "", task: Any = None, args: Any = (), **_: Any) -> None:
    _started[task_id] = time.perf_counter()
    name = str(getattr(task, "name", ""))
    payload = args[0] if args and isinstance(args[0], Mapping) else {}
    message_id = args[0] if name == DISPATCH_TASK and args and isinstance(args[0], str) else None
    logs.bind(task_name=name, request_id=task_id if _is_intake(name) else None, message_id=message_id,
              merchant=payload.get("merchantId") if isinstance(payload.get("merchantId"), str) else None)


@receiver(signals.task_postrun, weak=False, dispatch_uid="hexavox-telemetry-postrun")
def _postrun(task_id: str = "", task: Any = None, retval: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    elapsed = time.perf_counter() - started if started is not None else 0.0
    name = str(getattr(task, "name", ""))
    try:
        TASKS.labels(bounded(name, _task_names()), bounded(state, _CELERY_STATES)).inc()
        if _is_intake(name) and isinstance(retval, Mapping):
            _answered(name, retval, elapsed)
        elif name == DISPATCH_TASK:
            step = retval if isinstance(retval, str) else ("RETRY" if state == "RETRY" else "error")
            queue = (getattr(task.request, "delivery_info", None) or {}).get("routing_key")
            DISPATCH_SECONDS.labels(bounded(queue, ALL_QUEUES), bounded(step, _STEPS)).observe(elapsed)
        elif name == "hexavox.internal.deliver_callbacks" and isinstance(retval, Mapping):
            _count(CALLBACKS, retval, _CALLBACK_OUTCOMES)
        elif name == "hexavox.internal.reconcile_sweep" and isinstance(retval, Mapping):
            _count(RECONCILE, retval, _RECONCILE_RESULTS)
    except Exception as err:  # telemetry never fails a task
        log.warning("metrics for task %s not recorded: %s", name, type(err).__name__)
    finally:
        logs.clear()


def _answered(job: str, answer: Mapping[str, Any], elapsed: float) -> None:
    """Time the answer, count its refusals by code, and log them at INFO (an expected outcome)."""
    job_label = bounded(job, _task_names())
    INTAKE_SECONDS.labels(job_label, bounded(answer.get("status"), _ANSWER_STATUSES)).observe(elapsed)
    codes = [_code(answer.get("error"))] + [_code(m.get("error")) for m in answer.get("messages") or []
                                            if isinstance(m, Mapping)]
    refused = [code for code in codes if code]
    for code in refused:
        REFUSALS.labels(bounded(code, _CODES), job_label).inc()
    if refused:
        log.info("request refused %s: %s", "whole" if _code(answer.get("error")) else "in part",
                 ",".join(sorted(set(refused))))


def _code(error: Any) -> str | None:
    return str(error.get("code")) if isinstance(error, Mapping) and error.get("code") else None


def _count(counter: Any, counts: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key, value in counts.items():
        if key in allowed and isinstance(value, int) and value > 0:
            counter.labels(key).inc(value)


@receiver(signals.worker_init, weak=False, dispatch_uid="hexavox-telemetry-worker")
def _serve_worker_metrics(**_: Any) -> None:
    from worker.settings import get_settings
    from worker.telemetry.exposition import start_metrics_server

    port = get_settings().metrics_port
    if port:
        start_metrics_server(port)
        log.info("worker metrics on :%d/metrics", port)


@receiver(signals.beat_init, weak=False, dispatch_uid="hexavox-telemetry-beat")
def _serve_beat_metrics(**_: Any) -> None:
    from worker.settings import get_settings
    from worker.telemetry.exposition import start_metrics_server
    from worker.telemetry.state import StateCollector

    settings = get_settings()
    if settings.metrics_port:
        start_metrics_server(settings.metrics_port, extra=[StateCollector(settings)])
        log.info("beat metrics (service state) on :%d/metrics", settings.metrics_port)


@receiver(signals.worker_process_shutdown, weak=False, dispatch_uid="hexavox-telemetry-child-exit")
def _retire_child(pid: int | None = None, **_: Any) -> None:
    from worker.telemetry.exposition import MULTIPROC_ENV

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def _install_event_masking() -> None:
    from worker.celery_app import app
    from worker.telemetry.events import install

    install(app)


_install_event_masking()
