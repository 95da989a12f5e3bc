"""Per-provider circuit breaker, shared through Redis (and in-process for embedded mode)."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

from providers.base import SendOutcome
from providers.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    LocalBreaker,
    RedisBreaker,
    breaker_for,
    reset_breakers,
)
from worker.settings import load_settings

MakeBreaker = Callable[..., Breaker]
T = TypeVar("T")
FAST = BreakerPolicy(failure_threshold=3, window_seconds=5, open_seconds=0.2, probe_seconds=5)


@pytest.fixture(params=["redis", "local"])
def make_breaker(request: pytest.FixtureRequest) -> MakeBreaker:
    """Build breakers of one backend; with Redis each call is a separate 'worker' sharing the same state."""
    if request.param == "local":  # in-process: the "workers" are threads sharing one instance
        built: dict[tuple[BreakerPolicy, object], Breaker] = {}
        return lambda policy=FAST, on_open=None: built.setdefault((policy, on_open), LocalBreaker(policy, on_open))
    url = request.getfixturevalue("redis_url")
    prefix = f"test:breaker:{uuid.uuid4().hex}:"  # keys of this test only, should another session share the db
    return lambda policy=FAST, on_open=None: RedisBreaker(url, policy, on_open, prefix=prefix)


class Alerts:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, provider: str) -> None:
        with self._lock:
            self.opened.append(provider)


def _together(count: int, action: Callable[[], T]) -> list[T]:
    """Run ``action`` in ``count`` threads released at the same moment."""
    barrier, results, lock = threading.Barrier(count), list[T](), threading.Lock()

    def run() -> None:
        barrier.wait()
        result = action()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _trip(breaker: Breaker, provider: str = "p") -> None:
    for _ in range(breaker.policy.failure_threshold):
        breaker.record(provider, SendOutcome.UNAVAILABLE)


def test_the_breaker_opens_after_n_consecutive_unavailable_outcomes_and_alerts_once(make_breaker: MakeBreaker) -> None:
    alerts = Alerts()
    breaker = make_breaker(on_open=alerts)
    breaker.record("p", SendOutcome.UNAVAILABLE)
    breaker.record("p", SendOutcome.UNAVAILABLE)
    assert breaker.state("p") is BreakerState.CLOSED and breaker.allow("p")
    breaker.record("p", SendOutcome.UNAVAILABLE)
    assert breaker.state("p") is BreakerState.OPEN and not breaker.allow("p")
    _trip(breaker)
    assert alerts.opened == ["p"]
    assert breaker.state("q") is BreakerState.CLOSED


def test_a_success_resets_the_streak_of_failures(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    for outcome in [SendOutcome.UNAVAILABLE, SendOutcome.UNAVAILABLE, SendOutcome.ACCEPTED, SendOutcome.UNAVAILABLE,
                    SendOutcome.UNAVAILABLE, SendOutcome.REJECTED, SendOutcome.UNAVAILABLE]:
        breaker.record("p", outcome)
    assert breaker.state("p") is BreakerState.CLOSED


def test_a_provider_that_keeps_timing_out_opens_the_breaker(make_breaker: MakeBreaker) -> None:
    alerts = Alerts()
    breaker = make_breaker(on_open=alerts)
    for _ in range(FAST.failure_threshold - 1):
        breaker.record("p", SendOutcome.AMBIGUOUS)
    assert breaker.state("p") is BreakerState.CLOSED
    breaker.record("p", SendOutcome.UNAVAILABLE)  # timeouts and refused connections make one streak
    assert breaker.state("p") is BreakerState.OPEN and alerts.opened == ["p"]


def test_failures_further_apart_than_the_window_do_not_open_the_breaker(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(dataclasses.replace(FAST, window_seconds=0.15))
    breaker.record("p", SendOutcome.UNAVAILABLE)
    breaker.record("p", SendOutcome.UNAVAILABLE)
    time.sleep(0.25)
    breaker.record("p", SendOutcome.UNAVAILABLE)
    assert breaker.state("p") is BreakerState.CLOSED


def test_many_workers_failing_together_raise_one_alert(make_breaker: MakeBreaker) -> None:
    alerts = Alerts()
    workers = [make_breaker(on_open=alerts) for _ in range(16)]
    it = iter(workers)
    lock = threading.Lock()

    def fail() -> None:
        with lock:
            worker = next(it)
        worker.record("p", SendOutcome.UNAVAILABLE)

    _together(16, fail)
    assert alerts.opened == ["p"]
    assert workers[0].state("p") is BreakerState.OPEN


def test_exactly_one_probe_is_let_through_when_half_open(make_breaker: MakeBreaker) -> None:
    workers = [make_breaker() for _ in range(16)]
    _trip(workers[0])
    time.sleep(0.25)
    assert workers[0].state("p") is BreakerState.HALF_OPEN
    it, lock = iter(workers), threading.Lock()

    def ask() -> bool:
        with lock:
            worker = next(it)
        return worker.allow("p")

    assert sorted(_together(16, ask)) == [False] * 15 + [True]


def test_a_successful_probe_closes_the_breaker(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    _trip(breaker)
    time.sleep(0.25)
    assert breaker.allow("p")
    breaker.record("p", SendOutcome.ACCEPTED)
    assert breaker.state("p") is BreakerState.CLOSED
    assert all(breaker.allow("p") for _ in range(3))


@pytest.mark.parametrize("outcome", [SendOutcome.UNAVAILABLE, SendOutcome.AMBIGUOUS])
def test_a_failed_probe_reopens_the_breaker_without_a_second_alert(make_breaker: MakeBreaker,
                                                                   outcome: SendOutcome) -> None:
    alerts = Alerts()
    breaker = make_breaker(on_open=alerts)
    _trip(breaker)
    time.sleep(0.25)
    assert breaker.allow("p")
    breaker.record("p", outcome)
    assert breaker.state("p") is BreakerState.OPEN and not breaker.allow("p")
    time.sleep(0.25)
    assert breaker.allow("p"), "after another open period a new probe is allowed"
    assert alerts.opened == ["p"]


def test_a_straggling_success_while_open_does_not_close_the_breaker(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(dataclasses.replace(FAST, open_seconds=5))
    _trip(breaker)
    breaker.record("p", SendOutcome.ACCEPTED)
    assert breaker.state("p") is BreakerState.OPEN


def test_a_probe_that_never_reports_is_forgotten_after_probe_seconds(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(dataclasses.replace(FAST, probe_seconds=0.2))
    _trip(breaker)
    time.sleep(0.25)
    assert breaker.allow("p") and not breaker.allow("p")
    time.sleep(0.25)
    assert breaker.allow("p")


def test_an_alert_hook_that_raises_does_not_break_recording(make_breaker: MakeBreaker) -> None:
    def broken(provider: str) -> None:
        raise RuntimeError("alert table is down")

    breaker = make_breaker(on_open=broken)
    _trip(breaker)
    assert breaker.state("p") is BreakerState.OPEN


def test_breaker_for_uses_redis_when_a_redis_url_is_configured(redis_url: str) -> None:
    reset_breakers()
    try:
        shared = breaker_for(dataclasses.replace(load_settings(), redis_url=redis_url))
        assert isinstance(shared, RedisBreaker) and shared.policy == BreakerPolicy()
        assert isinstance(breaker_for(dataclasses.replace(load_settings(), redis_url="")), LocalBreaker)
        assert breaker_for(dataclasses.replace(load_settings(), redis_url=redis_url)) is shared
    finally:
        reset_breakers()
