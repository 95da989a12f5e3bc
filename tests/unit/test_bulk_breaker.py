"""A bulk answer feeds the circuit breaker as the same messages sent one by one would (worker.sending.record_bulk)."""

from __future__ import annotations

import pytest

from providers.base import SendResult
from providers.breaker import BreakerPolicy, BreakerState, LocalBreaker
from worker.sending import record_bulk

OK = SendResult.accepted("p", "ref")
NO = SendResult.rejected("p", "21211", "bad number")
AMB = SendResult.ambiguous("p", "timed out")
DOWN = SendResult.unavailable("p", "refused")


def _after(*answers: list[SendResult]) -> BreakerState:
    breaker = LocalBreaker(BreakerPolicy(failure_threshold=5))
    for results in answers:
        record_bulk(breaker, "p", results)
    return breaker.state("p")


def _one_by_one(results: list[SendResult]) -> BreakerState:
    breaker = LocalBreaker(BreakerPolicy(failure_threshold=5))
    for result in results:
        breaker.record("p", result.outcome)
    return breaker.state("p")


@pytest.mark.parametrize("results", [
    [OK, AMB, OK, AMB, AMB, OK, DOWN, AMB, OK, AMB, NO, AMB] * 4,  # 6 failures a dozen, never 5 in a row
    [AMB] * 4 + [OK] + [AMB] * 4,  # an answer between two streaks of 4
    [OK] * 10 + [AMB] * 5,  # 5 failures after the last answer: a streak that opens
    [DOWN] * 5,  # nothing answered
    [NO] + [DOWN] * 3,
])
def test_a_bulk_answer_leaves_the_breaker_where_single_sends_would(results: list[SendResult]) -> None:
    assert _after(results) == _one_by_one(results)


def test_scattered_failures_in_a_bulk_answer_keep_the_breaker_closed() -> None:
    # Given a bulk answer of 48 with 16 ambiguous messages, none five in a row
    results = [OK, AMB, OK, AMB, AMB, OK] * 8
    # Then the provider answered: the breaker stays closed
    assert _after(results) == BreakerState.CLOSED


def test_a_trailing_streak_carries_over_to_an_answer_with_no_message_answered() -> None:
    # Given three failures at the end of one answer, then an answer of two failures only
    assert _after([OK, AMB, AMB, AMB], [DOWN, DOWN]) == BreakerState.OPEN
    # But an answer that answered any of its messages shows the provider up, wherever that message sits in it
    assert _after([OK, AMB, AMB, AMB], [DOWN, DOWN, OK]) == BreakerState.CLOSED
