"""Per-provider throughput limits (messages per second), shared by every worker that sends to the provider.

A provider's contract caps how fast we may send; exceeding it gets calls refused (or the account suspended), so the
limit must hold across all worker processes on all hosts. The algorithm is GCRA: one number per provider (the
theoretical arrival time of the next send) moved on by one interval per granted send, which gives an even pace
with no burst at window edges. :class:`RedisThrottle` runs it atomically in Redis (``throttle.lua``, Redis clock);
:class:`LocalThrottle` is the same algorithm in-process for embedded mode, where one process is the only sender.

API, in the dramatiq limiter style:

* ``acquire(provider, rate_per_sec) -> float``: 0.0 when a slot is granted now, else the seconds until the next
  slot may be free. Nothing is reserved when it answers > 0, so a caller that gives up wastes no capacity.
* ``wait(provider, rate_per_sec, max_wait) -> bool``: sleeps and retries until granted; returns False (without
  sleeping past the limit) when the next slot is further than ``max_wait`` seconds away. The caller then treats
  the provider as UNAVAILABLE for now: nothing left our side.

A rate of 0 (or less) means unlimited. Redis errors propagate: nothing was sent, so the task may retry.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import redis

from worker.settings import Settings

__all__ = ["Throttle", "RedisThrottle", "LocalThrottle", "throttle_for", "reset_throttles"]

_LUA = Path(__file__).with_name("throttle.lua")


class Throttle(ABC):
    """A shared limit of ``rate_per_sec`` sends per provider; subclasses implement only :meth:`_acquire`."""

    def __init__(self, burst: int = 1) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.burst = burst

    def acquire(self, provider: str, rate_per_sec: float) -> float:
        """0.0 when a send to ``provider`` may go now (and is counted), else seconds until one may."""
        if rate_per_sec <= 0:
            return 0.0
        interval = 1.0 / rate_per_sec
        return self._acquire(provider, interval, (self.burst - 1) * interval)

    def wait(self, provider: str, rate_per_sec: float, max_wait: float) -> bool:
        """Block until a slot is granted (True) or until it is clear none comes within ``max_wait`` s (False)."""
        deadline = time.monotonic() + max_wait
        while True:
            delay = self.acquire(provider, rate_per_sec)
            if delay <= 0:
                return True
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)

    @abstractmethod
    def _acquire(self, provider: str, interval: float, tolerance: float) -> float:
        """GCRA step for ``provider``: seconds to wait (0 = granted); ``interval`` and ``tolerance`` in seconds."""


class LocalThrottle(Throttle):
    """In-process GCRA for embedded mode (one process sends); thread-safe."""

    def __init__(self, burst: int = 1) -> None:
        super().__init__(burst)
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def _acquire(self, provider: str, interval: float, tolerance: float) -> float:
        with self._lock:
            now = time.monotonic()
            tat = max(self._tat.get(provider, now), now)
            if now < tat - tolerance:
                return tat - tolerance - now
            self._tat[provider] = tat + interval
            return 0.0


class RedisThrottle(Throttle):
    """GCRA in Redis: every worker on every host shares one pace per provider; time is Redis's own clock."""

    def __init__(self, redis_url: str, *, burst: int = 1, prefix: str = "hexavox:throttle:") -> None:
        super().__init__(burst)
        self.prefix = prefix
        # redis-py replaces its pool after fork, so one instance is safe in prefork pool children.
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._client.register_script(_LUA.read_text())

    def _acquire(self, provider: str, interval: float, tolerance: float) -> float:
        micros = self._script(keys=[self.prefix + provider], args=[_micros(interval), _micros(tolerance)])
        return int(micros) / 1_000_000

    def __repr__(self) -> str:
        return f"RedisThrottle(prefix={self.prefix!r})"


def _micros(seconds: float) -> int:
    return max(int(round(seconds * 1_000_000)), 0)


_shared: dict[str, Throttle] = {}
_shared_lock = threading.Lock()


def throttle_for(settings: Settings) -> Throttle:
    """The process's throttle: Redis when HEXAVOX_REDIS_URL is set, else in-process (embedded mode)."""
    with _shared_lock:
        if settings.redis_url not in _shared:
            _shared[settings.redis_url] = RedisThrottle(settings.redis_url) if settings.redis_url else LocalThrottle()
        return _shared[settings.redis_url]


def reset_throttles() -> None:
    """Forget the process's throttles (tests change HEXAVOX_REDIS_URL between cases)."""
    with _shared_lock:
        _shared.clear()
