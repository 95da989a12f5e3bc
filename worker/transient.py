"""Which infrastructure errors are worth trying again, and a bounded backoff to try them with.

A dropped PostgreSQL connection (``pg_terminate_backend``: AdminShutdown, a server restarting or not
yet accepting connections), a deadlock or serialisation failure, and an unreachable Redis are all
passing states of the infrastructure, not facts about the job. Answering them with E103 makes every
client do the retry; trying again here for a few seconds hides a restart or a killed connection.
Only work that is safe to run again may be retried this way: intake and admin jobs are idempotent by
request id, and every dispatch step is a conditional UPDATE.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from sqlalchemy.exc import DBAPIError

__all__ = ["is_transient", "retry_transient", "backoff_delays", "TRANSIENT_SQLSTATES"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: serialization failure, deadlock, admin/crash shutdown, cannot connect now (starting up or shutting down),
#: too many connections; every class 08 code (connection exceptions) is transient as well.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


def is_transient(err: BaseException) -> bool:
    """True when ``err`` says the database or Redis was briefly unreachable or undid the transaction."""
    if isinstance(err, (redis.ConnectionError, redis.TimeoutError)):
        return True
    if isinstance(err, DBAPIError):
        if err.connection_invalidated:
            return True
        sqlstate = getattr(err.orig, "sqlstate", None)
        if sqlstate is None:  # the driver never got an answer: connection refused, reset or closed
            return _is_connection_error(err.orig)
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    return False


def _is_connection_error(orig: BaseException | None) -> bool:
    import psycopg

    return isinstance(orig, psycopg.OperationalError)


def backoff_delays(attempts: int, *, base: float, cap: float) -> list[float]:
    """The waits between ``attempts`` tries: doubling from ``base`` up to ``cap``, with jitter (50-100 %)."""
    return [min(cap, base * 2 ** i) * (0.5 + random.random() / 2) for i in range(attempts - 1)]


def retry_transient(work: Callable[[], T], *, attempts: int, base: float = 0.05, cap: float = 2.0,
                    what: str = "work") -> T:
    """Run ``work``; on a transient error wait (bounded backoff) and run it again, at most ``attempts`` times.

    Any other error, or a transient one on the last attempt, is raised to the caller unchanged.
    """
    delays = backoff_delays(attempts, base=base, cap=cap)
    for delay in delays:
        try:
            return work()
        except Exception as err:
            if not is_transient(err):
                raise
            log.warning("%s hit a transient error (%s); trying again in %.2fs", what, type(err).__name__, delay)
            time.sleep(delay)
    return work()
