"""Failover across providers: only after UNAVAILABLE, never after an answer or an ambiguous send."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from providers.base import (
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    Provider,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.breaker import BreakerPolicy, BreakerState, LocalBreaker
from providers.routing import dispatch_with_failover
from providers.throttle import LocalThrottle
from schema.states import Channel

MESSAGE = OutboundMessage(message_id="m1", channel=Channel.SMS, message_type="TXN", recipient="+14155550100", body="hi")


class ScriptedProvider:
    """A driver that answers every send with one fixed outcome and counts its calls."""

    def __init__(self, name: str, outcome: SendOutcome, *, channels: frozenset[Channel] = frozenset(Channel),
                 max_rps: float = 0.0) -> None:
        self.name, self.outcome, self.channels, self.max_rps = name, outcome, channels, max_rps
        self.calls = 0

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        return SendResult(self.outcome, self.name, provider_ref=f"{self.name}-ref"
                          if self.outcome is SendOutcome.ACCEPTED else None)

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        return StatusResult(DeliveryStatus.UNKNOWN)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        return []


class RaisingProvider(ScriptedProvider):
    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        raise TimeoutError("read timed out after the request was written")


def route(*providers: Provider, breaker: LocalBreaker | None = None, max_wait: float = 0.5
          ) -> tuple[SendResult, list[SendResult]]:
    return dispatch_with_failover(MESSAGE, providers, breaker=breaker or LocalBreaker(), throttle=LocalThrottle(),
                                  max_wait=max_wait)


def test_an_unavailable_provider_fails_over_to_the_next() -> None:
    down, up = ScriptedProvider("down", SendOutcome.UNAVAILABLE), ScriptedProvider("up", SendOutcome.ACCEPTED)
    final, attempts = route(down, up)
    assert (final.outcome, final.provider, final.provider_ref) == (SendOutcome.ACCEPTED, "up", "up-ref")
    assert [(a.provider, a.outcome) for a in attempts] == [
        ("down", SendOutcome.UNAVAILABLE), ("up", SendOutcome.ACCEPTED)]


@pytest.mark.parametrize("outcome", [SendOutcome.AMBIGUOUS, SendOutcome.REJECTED, SendOutcome.ACCEPTED])
def test_an_answer_or_an_ambiguous_send_stops_routing_at_once(outcome: SendOutcome) -> None:
    first, second = ScriptedProvider("first", outcome), ScriptedProvider("second", SendOutcome.ACCEPTED)
    final, attempts = route(first, second)
    assert final.outcome is outcome and len(attempts) == 1
    assert second.calls == 0


def test_when_every_provider_is_unavailable_the_last_unavailable_is_returned() -> None:
    a, b = ScriptedProvider("a", SendOutcome.UNAVAILABLE), ScriptedProvider("b", SendOutcome.UNAVAILABLE)
    final, attempts = route(a, b)
    assert (final.outcome, final.provider, len(attempts)) == (SendOutcome.UNAVAILABLE, "b", 2)


def test_a_provider_with_an_open_breaker_is_skipped_without_a_call() -> None:
    breaker = LocalBreaker(BreakerPolicy(failure_threshold=1, open_seconds=60))
    breaker.record("a", SendOutcome.UNAVAILABLE)
    a, b = ScriptedProvider("a", SendOutcome.ACCEPTED), ScriptedProvider("b", SendOutcome.ACCEPTED)
    final, attempts = route(a, b, breaker=breaker)
    assert a.calls == 0 and final.provider == "b"
    assert (attempts[0].outcome, attempts[0].detail) == (SendOutcome.UNAVAILABLE, "circuit breaker open")


def test_send_outcomes_are_recorded_in_the_breaker() -> None:
    breaker = LocalBreaker(BreakerPolicy(failure_threshold=2, open_seconds=60))
    down, up = ScriptedProvider("down", SendOutcome.UNAVAILABLE), ScriptedProvider("up", SendOutcome.ACCEPTED)
    route(down, up, breaker=breaker)
    route(down, up, breaker=breaker)
    route(down, up, breaker=breaker)
    assert down.calls == 2, "the third message skipped the provider whose breaker opened"
    assert breaker.state("down") is BreakerState.OPEN and breaker.state("up") is BreakerState.CLOSED


def test_a_provider_throttled_beyond_max_wait_is_failed_over_without_a_call() -> None:
    throttle = LocalThrottle()
    slow, other = ScriptedProvider("slow", SendOutcome.ACCEPTED, max_rps=1), ScriptedProvider("o", SendOutcome.ACCEPTED)
    assert throttle.acquire("slow", 1) == 0
    final, attempts = dispatch_with_failover(MESSAGE, [slow, other], breaker=LocalBreaker(), throttle=throttle,
                                             max_wait=0.05)
    assert slow.calls == 0 and final.provider == "o"
    assert attempts[0].outcome is SendOutcome.UNAVAILABLE and "throttled" in attempts[0].detail
    assert attempts[0].throttled  # our own limit, not the provider's health: dispatch waits for a slot


def test_a_provider_that_does_not_serve_the_channel_is_skipped() -> None:
    email_only = ScriptedProvider("mail", SendOutcome.ACCEPTED, channels=frozenset({Channel.EMAIL}))
    sms = ScriptedProvider("sms", SendOutcome.ACCEPTED)
    final, _ = route(email_only, sms)
    assert email_only.calls == 0 and final.provider == "sms"


def test_a_driver_that_raises_is_treated_as_ambiguous_and_never_failed_over() -> None:
    broken, other = RaisingProvider("broken", SendOutcome.ACCEPTED), ScriptedProvider("o", SendOutcome.ACCEPTED)
    final, attempts = route(broken, other)
    assert final.outcome is SendOutcome.AMBIGUOUS and "TimeoutError" in final.detail
    assert other.calls == 0 and len(attempts) == 1


def test_routing_without_any_provider_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        route()
