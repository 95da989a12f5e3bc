"""The urgency signal: bulk work steps aside, briefly, while an urgent job (an OTP) is in flight anywhere.

On a small box the bulk worker and the PostgreSQL backends serving it take the CPU an OTP waits for; ``nice`` on
the bulk worker does not reach its backends. So the urgent side says when it runs, and the bulk side looks between
its steps (before a claim, before a provider call, before recording, between sub-batches) and waits a little:

* An urgent job adds a mark to a Redis sorted set (a random token scored by its deadline, one pipeline round trip)
  and removes it when done. A mark left by a process that died counts until its deadline (:data:`MARK_SECONDS`),
  never longer. The same pipeline refreshes a short-lived "recently urgent" key.
* :func:`yield_to_urgent` waits while any mark is live, at most HEXAVOX_URGENT_YIELD_MS per call, so bulk work
  never starves however much urgent traffic there is. One answer from Redis is shared by the threads of a process
  for :data:`POLL_SECONDS`, so dozens of waiting bulk threads cost a few round trips, not one each.
* :func:`recently_urgent` tells bulk work to proceed in smaller statements (HEXAVOX_URGENT_BULK_BATCH) while
  urgent traffic is about, so a long statement does not hold the CPU while an OTP waits.
* Without Redis (embedded mode, or Redis unreachable) nothing waits: the signal only ever slows bulk work down, it
  never decides whether or what is sent, so losing it costs latency, never a message.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from worker.advisory_redis import AdvisoryRedis
from worker.settings import Settings

__all__ = ["INFLIGHT_KEY", "RECENT_KEY", "URGENT_QUEUES", "recently_urgent", "urgent", "urgent_in_flight",
           "yield_to_urgent", "BulkPacer", "pace_bulk", "reset"]

#: Sorted set of urgent jobs in flight: random token -> deadline (seconds since the epoch).
INFLIGHT_KEY = "hexavox:urgent:inflight"
#: Set (with a short expiry) whenever an urgent job starts: bulk work runs in smaller steps while it exists.
RECENT_KEY = "hexavox:urgent:recent"
#: Queues whose jobs are urgent: an OTP's intake and its dispatch.
URGENT_QUEUES = frozenset({"otp", "dispatch.otp"})
#: How long a mark counts at most: a process that died mid-job stops holding bulk work back after this.
MARK_SECONDS = 5.0
#: How long after the last urgent start bulk work keeps to its smaller steps.
RECENT_MS = 1000
#: How long one answer about marks in flight is shared by a process's threads.
POLL_SECONDS = 0.005
_REDIS_TIMEOUT = 0.1  # seconds: the signal is advisory, a slow Redis counts as down
_REDIS_BACKOFF = 1.0  # seconds the signal stays off after Redis failed, so bulk threads do not each wait on it

_lock = threading.Lock()
#: url -> (monotonic time of the answer, marks in flight, recently urgent)
_answers: dict[str, tuple[float, int, bool]] = {}


_redis = AdvisoryRedis("urgency signal, bulk work does not wait", timeout=_REDIS_TIMEOUT, backoff=_REDIS_BACKOFF)


def _enabled(settings: Settings) -> bool:
    return bool(settings.redis_url) and settings.urgent_yield_ms > 0


@contextmanager
def urgent(settings: Settings, *, active: bool = True) -> Iterator[None]:
    """Mark the enclosed work as urgent for every bulk worker sharing this Redis (no-op when ``active`` is False)."""
    if not active or not _enabled(settings):
        yield
        return
    url, token = settings.redis_url, secrets.token_hex(8)

    def mark(client: redis.Redis) -> bool:
        pipe = client.pipeline(transaction=False)
        pipe.zadd(INFLIGHT_KEY, {token: time.time() + MARK_SECONDS})
        pipe.set(RECENT_KEY, b"1", px=RECENT_MS)
        pipe.execute()
        return True

    marked = bool(_redis.call(url, mark))
    try:
        yield
    finally:
        if marked:
            _redis.call(url, lambda client: client.zrem(INFLIGHT_KEY, token))


def _answer(url: str) -> tuple[int, bool]:
    """(urgent marks live now, urgent work started recently): one Redis round trip per process per poll interval."""
    now = time.monotonic()
    held = _answers.get(url)
    if held is not None and now - held[0] < POLL_SECONDS:
        return held[1], held[2]

    def read(client: redis.Redis) -> tuple[int, bool]:
        pipe = client.pipeline(transaction=False)
        pipe.zcount(INFLIGHT_KEY, time.time(), "+inf")
        pipe.exists(RECENT_KEY)
        live, recent = pipe.execute()
        return int(live), bool(recent)

    result = _redis.call(url, read) or (0, False)
    _answers[url] = (time.monotonic(), *result)
    return result


def urgent_in_flight(settings: Settings) -> int:
    """Urgent jobs in flight now (0 without Redis)."""
    return _answer(settings.redis_url)[0] if _enabled(settings) else 0


def recently_urgent(settings: Settings) -> bool:
    """True while urgent work started within the last second: bulk work should take smaller steps."""
    return _answer(settings.redis_url)[1] if _enabled(settings) else False


def yield_to_urgent(settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait while urgent work is in flight, at most HEXAVOX_URGENT_YIELD_MS; returns the seconds waited.

    Called by bulk work between its steps. Never waits without Redis, and never past the bound.
    """
    if not _enabled(settings):
        return 0.0
    bound = settings.urgent_yield_ms / 1000
    started = time.monotonic()
    while urgent_in_flight(settings):
        waited = time.monotonic() - started
        if waited >= bound:
            break
        sleep(min(POLL_SECONDS * 2, bound - waited))
    return time.monotonic() - started


class BulkPacer:
    """A per-process cap on bulk sends a second (HEXAVOX_BULK_RATE; 0: no cap), shared by the process's threads.

    Each caller reserves its messages' slots and sleeps until the first of them; bursts are not carried over.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self._clock, self._next, self._lock = rate, clock, 0.0, threading.Lock()

    def delay(self, count: int) -> float:
        """Seconds to wait before sending ``count`` messages (their slots are reserved)."""
        if self.rate <= 0 or count <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + count / self.rate
            return start - now


_pacers: dict[float, BulkPacer] = {}


def pace_bulk(settings: Settings, count: int, *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait for ``count`` bulk sends' slots under HEXAVOX_BULK_RATE; returns the seconds waited."""
    if settings.bulk_rate <= 0:
        return 0.0
    with _lock:
        pacer = _pacers.setdefault(settings.bulk_rate, BulkPacer(settings.bulk_rate))
    wait = pacer.delay(count)
    if wait > 0:
        sleep(wait)
    return wait


def reset() -> None:
    """Forget clients, cached answers, Redis failures and pacers (tests; a process whose settings changed)."""
    _redis.reset()
    with _lock:
        _pacers.clear()
    _answers.clear()
