"""The urgency signal against a real Redis: bulk work waits while an OTP is in flight, never past its bound, goes on
at once when none is, and never waits when Redis is down; the bulk pacer spaces sends by the rate."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from worker import urgency
from worker.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    urgency.reset()
    yield
    urgency.reset()


def _settings(redis_url: str, bound_ms: int = 100) -> Settings:
    return replace(load_settings(), redis_url=redis_url, urgent_yield_ms=bound_ms)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bulk_goes_on_at_once_when_nothing_urgent(redis_url: str) -> None:
    settings = _settings(redis_url)
    assert urgency.urgent_in_flight(settings) == 0
    assert urgency.yield_to_urgent(settings) < 0.02
    assert not urgency.recently_urgent(settings)


def test_bulk_waits_while_urgent_in_flight_and_goes_on_when_it_ends(redis_url: str) -> None:
    settings = _settings(redis_url, bound_ms=2000)
    inside, release = threading.Event(), threading.Event()

    def otp() -> None:
        with urgency.urgent(settings):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=otp)
    worker.start()
    assert inside.wait(5)
    assert urgency.urgent_in_flight(settings) == 1
    assert urgency.recently_urgent(settings)
    threading.Timer(0.15, release.set).start()
    waited = urgency.yield_to_urgent(settings)
    worker.join(5)
    assert 0.12 <= waited < 1.0  # waited for the OTP, went on soon after it ended, far below the bound
    assert redis.Redis.from_url(redis_url).zcard(urgency.INFLIGHT_KEY) == 0  # the mark is gone


def test_bulk_never_waits_past_the_bound(redis_url: str) -> None:
    settings = _settings(redis_url, bound_ms=60)
    with urgency.urgent(settings):
        waited = urgency.yield_to_urgent(settings)
    assert 0.06 <= waited < 0.2


def test_a_dead_jobs_mark_stops_counting_at_its_deadline(redis_url: str) -> None:
    settings = _settings(redis_url)
    client = redis.Redis.from_url(redis_url)
    client.zadd(urgency.INFLIGHT_KEY, {"died": time.time() - 0.1})  # deadline passed
    assert urgency.urgent_in_flight(settings) == 0
    client.zadd(urgency.INFLIGHT_KEY, {"alive": time.time() + 5})
    time.sleep(urgency.POLL_SECONDS * 2)  # past the shared answer
    assert urgency.urgent_in_flight(settings) == 1


def test_redis_down_means_no_wait(redis_url: str) -> None:
    down = _settings(f"redis://127.0.0.1:{_closed_port()}/0", bound_ms=1000)
    started = time.monotonic()
    with urgency.urgent(down):  # the urgent job runs anyway
        waited = urgency.yield_to_urgent(down)
    assert waited < 0.3 and time.monotonic() - started < 0.5
    assert not urgency.recently_urgent(down)


def test_switched_off_or_without_redis_nothing_is_marked(redis_url: str) -> None:
    off = _settings(redis_url, bound_ms=0)
    with urgency.urgent(off):
        assert redis.Redis.from_url(redis_url).zcard(urgency.INFLIGHT_KEY) == 0
        assert urgency.yield_to_urgent(off) == 0.0
    with urgency.urgent(_settings(""), active=True):
        assert urgency.yield_to_urgent(_settings("")) == 0.0
    with urgency.urgent(_settings(redis_url), active=False):
        assert redis.Redis.from_url(redis_url).zcard(urgency.INFLIGHT_KEY) == 0


def test_pacer_spaces_bulk_sends_by_the_rate() -> None:
    now = [100.0]
    pacer = urgency.BulkPacer(1000.0, clock=lambda: now[0])
    assert pacer.delay(500) == 0.0  # the first batch goes at once
    assert pacer.delay(500) == pytest.approx(0.5)  # the next waits for the first one's slots
    now[0] += 2.0  # idle time is not saved up as a burst
    assert pacer.delay(100) == 0.0
    assert urgency.BulkPacer(0.0).delay(10_000) == 0.0
