"""The metrics the processes update themselves (counters and histograms), all with bounded label sets.

Label values come from closed sets only: task names the app registers, catalogue codes, queue names, the
dispatch steps, the callback outcomes. Anything else is counted under ``other``, so a hostile task name or
code can never add a series. Gauges read from the database are in :mod:`worker.telemetry.state` instead.

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before this module is imported) every process writes
its samples to that folder and the serving process adds them up (see :mod:`worker.telemetry.exposition`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from prometheus_client import Counter, Histogram

__all__ = ["CALLBACKS", "DISPATCH_SECONDS", "HTTP_REQUESTS", "HTTP_SECONDS", "INTAKE_SECONDS", "RECONCILE",
           "REFUSALS", "TASKS", "bounded"]

OTHER: Final = "other"

#: Intake is policy and a few commits; dispatch waits on a provider (up to its timeout).
_INTAKE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DISPATCH_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

TASKS: Final = Counter("hexavox_tasks", "Tasks finished by a worker, by task name and Celery state.",
                       ["task", "state"])
INTAKE_SECONDS: Final = Histogram("hexavox_intake_duration_seconds",
                                  "Time to answer an intake job (policy, database, dispatch publish), by job and "
                                  "answer status (ACCEPTED, PARTIAL, REFUSED).", ["job", "status"],
                                  buckets=_INTAKE_BUCKETS)
DISPATCH_SECONDS: Final = Histogram("hexavox_dispatch_duration_seconds",
                                    "Time of one dispatch attempt (claim, provider call, record), by queue and the "
                                    "step it ended with.", ["queue", "step"], buckets=_DISPATCH_BUCKETS)
REFUSALS: Final = Counter("hexavox_refusals", "Requests and messages refused, by catalogue code and job.",
                          ["code", "job"])
CALLBACKS: Final = Counter("hexavox_callbacks",
                           "Outbound dlrUrl callback attempts by outcome (delivered, retry, refused, failed, error).",
                           ["outcome"])
RECONCILE: Final = Counter("hexavox_reconcile_messages",
                           "Messages handled by reconcile sweeps, by what happened to them.", ["result"])
HTTP_REQUESTS: Final = Counter("hexavox_http_requests", "HTTP requests answered, by route and status class.",
                               ["app", "route", "status"])
HTTP_SECONDS: Final = Histogram("hexavox_http_request_duration_seconds", "HTTP request time, by route.",
                                ["app", "route"], buckets=_INTAKE_BUCKETS)


def bounded(value: object, allowed: Collection[str]) -> str:
    """``value`` when it is one of ``allowed``, else ``other``: labels only take values from closed sets."""
    return value if isinstance(value, str) and value in allowed else OTHER
