"""The provider side of dispatch for this process: registry, shared throttle, shared circuit breaker."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from providers.base import OutboundMessage, SendOutcome, SendResult
from providers.breaker import Breaker, breaker_for
from providers.registry import get_provider
from providers.routing import dispatch_with_failover
from providers.throttle import Throttle, throttle_for
from schema.models import Alert
from worker.db import session_scope, upsert_insert
from worker.policy.dispatch import BulkSender, Sender
from worker.settings import Settings

__all__ = ["provider_sender", "provider_bulk_sender", "alert_circuit_open", "record_bulk"]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_shared: dict[str, tuple[Breaker, Throttle]] = {}
THROTTLE_MAX_WAIT = 2.0


def alert_circuit_open(provider: str) -> None:
    """Write one provider alert per provider per minute the breaker opens in."""
    minute = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M")
    with session_scope() as session:
        row = {"kind": "PROVIDER_CIRCUIT_OPEN", "dedupe_key": f"circuit:{provider}:{minute}",
               "detail": {"provider": provider}}
        session.execute(upsert_insert(session, Alert).values(**row).on_conflict_do_nothing())
    log.warning("circuit opened for provider %s", provider)


def _guards(settings: Settings) -> tuple[Breaker, Throttle]:
    with _lock:
        key = settings.redis_url or "local"
        if key not in _shared:
            _shared[key] = (breaker_for(settings, on_open=alert_circuit_open), throttle_for(settings))
        return _shared[key]


def provider_sender(settings: Settings) -> Sender:
    """A :data:`Sender` that tries the named providers in order with failover, throttle and breaker."""
    breaker, throttle = _guards(settings)

    def send(message: OutboundMessage, names: list[str]) -> SendResult:
        providers = [get_provider(name, settings) for name in names]
        result, _attempts = dispatch_with_failover(message, providers, breaker=breaker, throttle=throttle,
                                                   max_wait=THROTTLE_MAX_WAIT)
        return result

    return send


def provider_bulk_sender(settings: Settings) -> BulkSender:
    """A :data:`BulkSender`: the first provider's many-numbers call, when it has one, serves the channel, has no
    throughput limit of ours (those go one by one through the throttle) and its breaker lets calls through.

    Answers None when the bulk call cannot be used; the caller then sends one by one with failover.
    """
    breaker, _throttle = _guards(settings)

    def send_many(messages: list[OutboundMessage], names: list[str]) -> list[SendResult] | None:
        provider = get_provider(names[0], settings) if names else None
        bulk = getattr(provider, "send_many", None)
        if provider is None or bulk is None or provider.max_rps or not messages:
            return None
        if any(m.channel not in provider.channels for m in messages) or not breaker.allow(provider.name):
            return None
        results: list[SendResult] = bulk(messages)
        record_bulk(breaker, provider.name, results)
        return results

    return send_many


def record_bulk(breaker: Breaker, provider: str, results: list[SendResult]) -> None:
    """Feed one bulk answer to the breaker as if its messages had been sent one by one, in order.

    The breaker counts *consecutive* failures, and an answer resets the streak. So what a bulk answer leaves behind
    is: the streak reset if any message was answered, then the failures after the last answered one (all of them
    if none was answered). A bulk answer of 50 with 6 ambiguous messages scattered among answered ones therefore
    does not open the breaker, exactly as 50 single sends would not; the reset costs one round trip, not one a
    message.
    """
    failing = (SendOutcome.UNAVAILABLE, SendOutcome.AMBIGUOUS)
    answered = [index for index, result in enumerate(results) if result.outcome not in failing]
    if answered:
        breaker.record(provider, results[answered[-1]].outcome)
    for result in results[answered[-1] + 1 if answered else 0:]:
        breaker.record(provider, result.outcome)
