"""Per-provider throughput limits: one pace shared by every thread and process, in Redis and in-process."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.throttle import LocalThrottle, RedisThrottle, Throttle, reset_throttles, throttle_for
from worker.settings import load_settings

RATE = 50.0
REPO = Path(__file__).resolve().parents[2]

# A worker on another host: its own process, its own Redis connection pool, two threads.
_OTHER_PROCESS = """
import sys, threading
from providers.throttle import RedisThrottle
sys.path.insert(0, sys.argv[5])
from test_throttle import hammer
throttle = RedisThrottle(sys.argv[1], prefix=sys.argv[6])
counts = []
def run():
    counts.append(hammer(throttle, "p", float(sys.argv[4]), float(sys.argv[2]), float(sys.argv[3])))
threads = [threading.Thread(target=run) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(sum(counts))
"""


def _prefix() -> str:
    """Keys of this test only, should another test session share the Redis db."""
    return f"test:throttle:{uuid.uuid4().hex}:"


def hammer(throttle: Throttle, provider: str, rate: float, start: float, stop: float) -> int:
    """Ask for slots as fast as allowed between wall-clock ``start`` and ``stop``; return how many were granted."""
    time.sleep(max(start - time.time(), 0))
    granted = 0
    while (now := time.time()) < stop:
        delay = throttle.acquire(provider, rate)
        if delay == 0:
            granted += 1
        else:
            time.sleep(min(delay, max(stop - now, 0)))
    return granted


def _threads(make: Callable[[], Throttle], count: int, start: float, stop: float) -> list[int]:
    results: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        granted = hammer(make(), "p", RATE, start, stop)
        with lock:
            results.append(granted)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_threads_and_processes_sharing_redis_get_no_more_than_the_rate(redis_url: str) -> None:
    prefix = _prefix()
    start = time.time() + 1.5  # time for the other processes to import
    stop = start + 1.0
    others = [subprocess.Popen([sys.executable, "-c", _OTHER_PROCESS, redis_url, str(start), str(stop), str(RATE),
                                str(Path(__file__).parent), prefix], cwd=REPO, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    here = _threads(lambda: RedisThrottle(redis_url, prefix=prefix), 2, start, stop)
    there = [int(proc.communicate(timeout=30)[0]) for proc in others]
    assert all(proc.returncode == 0 for proc in others)
    assert 40 <= sum(here) + sum(there) <= RATE + 2
    assert sum(there) > 0 and sum(here) > 0


def test_threads_sharing_a_local_throttle_get_no_more_than_the_rate() -> None:
    start = time.time() + 0.05
    shared = LocalThrottle()
    granted = _threads(lambda: shared, 4, start, start + 1.0)
    assert 45 <= sum(granted) <= RATE + 2


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_wait_gives_up_when_the_next_slot_is_beyond_max_wait(redis_url: str, backend: str) -> None:
    throttle: Throttle = RedisThrottle(redis_url, prefix=_prefix()) if backend == "redis" else LocalThrottle()
    assert throttle.wait("p", 2.0, max_wait=0.1)
    began = time.monotonic()
    assert not throttle.wait("p", 2.0, max_wait=0.1)
    assert time.monotonic() - began < 0.05
    assert 0.4 < throttle.acquire("p", 2.0) <= 0.5


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_wait_sleeps_until_the_next_slot_when_it_comes_in_time(redis_url: str, backend: str) -> None:
    throttle: Throttle = RedisThrottle(redis_url, prefix=_prefix()) if backend == "redis" else LocalThrottle()
    assert throttle.acquire("p", 10.0) == 0
    began = time.monotonic()
    assert throttle.wait("p", 10.0, max_wait=1.0)
    assert 0.05 < time.monotonic() - began < 0.3


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_each_provider_has_its_own_limit_and_zero_means_unlimited(redis_url: str, backend: str) -> None:
    throttle: Throttle = RedisThrottle(redis_url, prefix=_prefix()) if backend == "redis" else LocalThrottle()
    assert throttle.acquire("a", 1.0) == 0
    assert throttle.acquire("a", 1.0) > 0
    assert throttle.acquire("b", 1.0) == 0
    assert all(throttle.acquire("c", 0) == 0 for _ in range(100))


def test_throttle_for_uses_redis_when_a_redis_url_is_configured(redis_url: str) -> None:
    reset_throttles()
    try:
        with_redis = throttle_for(dataclasses.replace(load_settings(), redis_url=redis_url))
        embedded = throttle_for(dataclasses.replace(load_settings(), redis_url=""))
        assert isinstance(with_redis, RedisThrottle) and isinstance(embedded, LocalThrottle)
        assert throttle_for(dataclasses.replace(load_settings(), redis_url=redis_url)) is with_redis
    finally:
        reset_throttles()
