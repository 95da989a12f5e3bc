"""A Redis that a caller may do without: one quick try, then a moment of not asking again.

The lookup cache and the urgency signal both ask Redis for something that only makes the service faster or
fairer, never for something it needs to be correct. So a call gets one attempt with a short timeout and no
client-side retries, and after a failure the caller is told "no answer" at once for a short back-off, instead of
every thread of the process waiting on a Redis that is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["AdvisoryRedis"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class AdvisoryRedis:
    """Clients per URL with one try each call; ``None`` for a call that failed or falls in the back-off."""

    def __init__(self, what: str, *, timeout: float, backoff: float, on_failure: Callable[[], None] | None = None):
        self._what = what  # names the caller and what it does without Redis, in the warning
        self._timeout = timeout
        self._backoff = backoff
        self._on_failure = on_failure
        self._clients: dict[str, redis.Redis] = {}
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def call(self, url: str, work: Callable[[redis.Redis], T]) -> T | None:
        """``work`` on the client for ``url``, or None when it failed (or failed less than a moment ago)."""
        if not url or self._down_until.get(url, 0.0) > time.monotonic():
            return None
        try:
            return work(self._client(url))
        except (redis.RedisError, OSError) as err:
            self._down_until[url] = time.monotonic() + self._backoff
            if self._on_failure is not None:
                self._on_failure()
            log.warning("%s: Redis unavailable (%s)", self._what, type(err).__name__)
            return None

    def reset(self) -> None:
        """Close every client and forget failures (tests; a process whose settings changed)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            self._down_until.clear()

    def _client(self, url: str) -> redis.Redis:
        client = self._clients.get(url)
        if client is None:
            with self._lock:
                client = self._clients.get(url)
                if client is None:
                    client = redis.Redis.from_url(url, socket_timeout=self._timeout,
                                                  socket_connect_timeout=self._timeout, retry=Retry(NoBackoff(), 0))
                    self._clients[url] = client
        return client
