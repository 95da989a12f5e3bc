"""Send one message through an ordered list of providers, failing over only when nothing left our side.

Failover is safe only after UNAVAILABLE (connection refused, throttled, breaker open): the first provider never got
the message. After ACCEPTED or REJECTED the provider has answered; after AMBIGUOUS the message may already be on
its way, and sending it to a second provider could deliver it twice, so routing stops at once and reconcile
decides (docs/reliability.md R3/R4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from providers.base import OutboundMessage, Provider, SendResult
from providers.breaker import Breaker
from providers.outcomes import TransportFailure, may_fail_over, result_for
from providers.throttle import Throttle

__all__ = ["dispatch_with_failover"]

log = logging.getLogger(__name__)


def dispatch_with_failover(message: OutboundMessage, providers: Sequence[Provider], *, breaker: Breaker,
                           throttle: Throttle, max_wait: float) -> tuple[SendResult, list[SendResult]]:
    """Try ``providers`` in order; return the final result and every attempt, skipped providers included.

    A provider is skipped (an UNAVAILABLE attempt, no call made) when it does not serve the message's channel, its
    throttle has no slot within ``max_wait`` seconds, or its breaker refuses. Only real send outcomes are fed to
    the breaker: our own throttling says nothing about the provider's health.
    """
    if not providers:
        raise ValueError(f"no provider to send message {message.message_id} through")
    attempts: list[SendResult] = []
    for provider in providers:
        result = _try(message, provider, breaker, throttle, max_wait)
        attempts.append(result)
        if not may_fail_over(result.outcome):
            break
    return attempts[-1], attempts


def _try(message: OutboundMessage, provider: Provider, breaker: Breaker, throttle: Throttle,
         max_wait: float) -> SendResult:
    if message.channel not in provider.channels:
        return SendResult.unavailable(provider.name, f"provider does not serve channel {message.channel}")
    refused = _guards_refuse(provider, breaker, throttle, max_wait)
    if refused is not None:
        return refused
    result = _send(message, provider)
    _bookkeep(breaker, provider.name, result)
    return result


def _guards_refuse(provider: Provider, breaker: Breaker, throttle: Throttle, max_wait: float) -> SendResult | None:
    """Why the throttle or breaker will not let this send go now, or None when it may.

    Throttle before asking the breaker, so a HALF_OPEN probe slot is never taken by a caller that then gives up.
    A guard that cannot be asked (its Redis is down) holds the message back like a throttle does: nothing left
    our side, so it waits for its slot (with backoff) rather than failing or going out unpaced.
    """
    try:
        if not throttle.wait(provider.name, provider.max_rps, max_wait):
            return SendResult.unavailable(provider.name, f"throttled: no slot within {max_wait}s", throttled=True)
        if not breaker.allow(provider.name):
            return SendResult.unavailable(provider.name, "circuit breaker open")
    except Exception as err:
        log.warning("throttle or breaker for provider %s unavailable (%s): the message waits",
                    provider.name, type(err).__name__)
        return SendResult.unavailable(provider.name, f"throttle/breaker unavailable: {type(err).__name__}",
                                      throttled=True)
    return None


def _bookkeep(breaker: Breaker, provider: str, result: SendResult) -> None:
    """Feed the breaker, best effort: the provider has answered, and that answer must reach the database."""
    try:
        breaker.record(provider, result.outcome)
    except Exception as err:
        log.warning("could not record outcome %s in the breaker of provider %s (%s)", result.outcome.value,
                    provider, type(err).__name__)


def _send(message: OutboundMessage, provider: Provider) -> SendResult:
    """The driver's answer; a driver that raises broke its contract, and it may have sent: AMBIGUOUS, never resend."""
    try:
        return provider.send(message)
    except Exception as err:
        log.exception("provider %s raised on send of message %s", provider.name, message.message_id)
        return result_for(provider.name, TransportFailure(err, request_written=True),
                          detail=f"driver raised {type(err).__name__}: {err}", raw=None)
