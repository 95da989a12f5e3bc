"""Per-provider circuit breaker shared by every worker: stop calling a provider that is down, probe it, resume.

Without it, every worker keeps paying connect timeouts to a dead provider instead of failing over at once.

States: CLOSED (calls go through) -> OPEN after ``failure_threshold`` consecutive failures within
``window_seconds`` (calls are refused) -> HALF_OPEN once ``open_seconds`` have passed, where exactly ONE caller gets
``allow() == True`` as the probe -> the probe's success (ACCEPTED or REJECTED: the provider answered) closes it, its
failure re-opens it for another ``open_seconds``. A probe that never reports (its worker died) is forgotten after
``probe_seconds`` and another caller may probe.

Which outcomes count as failures: UNAVAILABLE (nothing reached the provider) and AMBIGUOUS (it timed out or
answered 5xx after the request left). An ambiguous message itself is never failed over (reconcile settles it), but
a provider that keeps timing out is as unfit for the *next* messages as one that refuses connections: sending more
into it only makes more messages to reconcile, while an open breaker lets new traffic fail over at once. ACCEPTED
and REJECTED (the provider answered) reset the streak. ``on_open(provider)`` is called once per incident, by the
caller whose outcome tripped the breaker (wired to a provider alert); re-opening after a failed probe does not call
it again.

Backends: :class:`RedisBreaker` keeps the state in Redis keys whose expiry is the timer (no client clocks), using
atomic primitives only (INCR, SET NX, MULTI); :class:`LocalBreaker` keeps it in-process for embedded mode.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import redis

from providers.base import SendOutcome
from providers.outcomes import counts_against_provider
from worker.settings import Settings

__all__ = ["BreakerState", "BreakerPolicy", "Breaker", "RedisBreaker", "LocalBreaker", "breaker_for",
           "reset_breakers"]

log = logging.getLogger(__name__)

OnOpen = Callable[[str], None]


class BreakerState(StrEnum):
    CLOSED = "CLOSED"  #: calls go through
    OPEN = "OPEN"  #: calls are refused until open_seconds have passed
    HALF_OPEN = "HALF_OPEN"  #: one probe call may go through


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    window_seconds: float = 60.0
    open_seconds: float = 30.0
    probe_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or min(self.window_seconds, self.open_seconds, self.probe_seconds) <= 0:
            raise ValueError(f"invalid breaker policy {self}")


class Breaker(ABC):
    """The outcome rules; a backend stores the state and implements the abstract steps atomically."""

    def __init__(self, policy: BreakerPolicy | None = None, on_open: OnOpen | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self.on_open = on_open

    @abstractmethod
    def allow(self, provider: str) -> bool:
        """True when a call may go to ``provider`` now (in HALF_OPEN: for exactly one caller, the probe)."""

    @abstractmethod
    def state(self, provider: str) -> BreakerState: ...

    def record(self, provider: str, outcome: SendOutcome) -> None:
        """Feed one send outcome of ``provider`` into its breaker."""
        if counts_against_provider(outcome):
            if self._failure(provider, counts=True):
                self._opened(provider)
        else:
            self._success(provider)

    def _opened(self, provider: str) -> None:
        log.warning("circuit breaker for provider %s opened after %d unavailable or ambiguous outcomes",
                    provider, self.policy.failure_threshold)
        if self.on_open is None:
            return
        try:
            self.on_open(provider)
        except Exception:  # an alert that cannot be written must not break dispatch
            log.exception("on_open hook failed for provider %s", provider)

    @abstractmethod
    def _failure(self, provider: str, *, counts: bool) -> bool:
        """Re-open a HALF_OPEN breaker; in CLOSED count the failure if ``counts``. True when this call tripped it."""

    @abstractmethod
    def _success(self, provider: str) -> None:
        """Reset the failure streak; close a HALF_OPEN breaker."""


@dataclass
class _Circuit:
    fails: int = 0
    streak_started: float = 0.0
    tripped: bool = False
    open_until: float = 0.0
    probe_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class LocalBreaker(Breaker):
    """In-process breaker for embedded mode (monotonic clock, one lock per provider)."""

    def __init__(self, policy: BreakerPolicy | None = None, on_open: OnOpen | None = None) -> None:
        super().__init__(policy, on_open)
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def _circuit(self, provider: str) -> _Circuit:
        with self._lock:
            return self._circuits.setdefault(provider, _Circuit())

    def state(self, provider: str) -> BreakerState:
        circuit = self._circuit(provider)
        with circuit.lock:
            return _local_state(circuit, time.monotonic())

    def allow(self, provider: str) -> bool:
        circuit, now = self._circuit(provider), time.monotonic()
        with circuit.lock:
            state = _local_state(circuit, now)
            if state is BreakerState.HALF_OPEN and circuit.probe_until <= now:
                circuit.probe_until = now + self.policy.probe_seconds
                return True
            return state is BreakerState.CLOSED

    def _failure(self, provider: str, *, counts: bool) -> bool:
        circuit, now = self._circuit(provider), time.monotonic()
        with circuit.lock:
            if circuit.tripped:
                if now >= circuit.open_until:  # HALF_OPEN: the probe failed
                    circuit.open_until, circuit.probe_until = now + self.policy.open_seconds, 0.0
                return False
            if not counts:
                return False
            if circuit.fails == 0 or now - circuit.streak_started > self.policy.window_seconds:
                circuit.fails, circuit.streak_started = 0, now
            circuit.fails += 1
            if circuit.fails < self.policy.failure_threshold:
                return False
            circuit.fails, circuit.tripped, circuit.open_until = 0, True, now + self.policy.open_seconds
            return True

    def _success(self, provider: str) -> None:
        circuit, now = self._circuit(provider), time.monotonic()
        with circuit.lock:
            circuit.fails = 0
            if circuit.tripped and now >= circuit.open_until:
                circuit.tripped, circuit.probe_until = False, 0.0
                log.info("circuit breaker for provider %s closed", provider)


def _local_state(circuit: _Circuit, now: float) -> BreakerState:
    if not circuit.tripped:
        return BreakerState.CLOSED
    return BreakerState.OPEN if now < circuit.open_until else BreakerState.HALF_OPEN


class RedisBreaker(Breaker):
    """Breaker state in Redis, shared by every worker on every host.

    Keys under ``<prefix><provider>:``: ``fails`` (the streak, expiring ``window_seconds`` after its first failure),
    ``tripped`` (set from opening until closing; SET NX decides who calls on_open), ``open`` (exists while OPEN;
    its expiry is the open timer) and ``probe`` (SET NX: the one HALF_OPEN probe, expiring after probe_seconds).
    """

    def __init__(self, redis_url: str, policy: BreakerPolicy | None = None, on_open: OnOpen | None = None, *,
                 prefix: str = "hexavox:breaker:") -> None:
        super().__init__(policy, on_open)
        self.prefix = prefix
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)

    def _key(self, provider: str, part: str) -> str:
        return f"{self.prefix}{provider}:{part}"

    def _flags(self, provider: str) -> tuple[bool, bool]:
        """(tripped, open) read in one round trip."""
        pipe = self._client.pipeline(transaction=True)
        pipe.exists(self._key(provider, "tripped"))
        pipe.exists(self._key(provider, "open"))
        tripped, is_open = pipe.execute()
        return bool(tripped), bool(is_open)

    def state(self, provider: str) -> BreakerState:
        tripped, is_open = self._flags(provider)
        if not tripped:
            return BreakerState.CLOSED
        return BreakerState.OPEN if is_open else BreakerState.HALF_OPEN

    def allow(self, provider: str) -> bool:
        tripped, is_open = self._flags(provider)
        if not tripped:
            return True
        if is_open:
            return False
        return bool(self._client.set(self._key(provider, "probe"), 1, nx=True, px=_ms(self.policy.probe_seconds)))

    def _failure(self, provider: str, *, counts: bool) -> bool:
        tripped, is_open = self._flags(provider)
        if tripped:
            if not is_open:
                self._open(provider)
            return False
        return counts and self._count(provider)

    def _count(self, provider: str) -> bool:
        pipe = self._client.pipeline(transaction=True)
        pipe.incr(self._key(provider, "fails"))
        pipe.pexpire(self._key(provider, "fails"), _ms(self.policy.window_seconds), nx=True)
        fails, _ = pipe.execute()
        if int(fails) < self.policy.failure_threshold:
            return False
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(provider, "open"), 1, px=_ms(self.policy.open_seconds))
        pipe.set(self._key(provider, "tripped"), 1, nx=True)
        pipe.delete(self._key(provider, "fails"))
        _, won, _ = pipe.execute()
        return bool(won)

    def _open(self, provider: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(provider, "open"), 1, px=_ms(self.policy.open_seconds))
        pipe.delete(self._key(provider, "probe"))
        pipe.execute()

    def _success(self, provider: str) -> None:
        pipe = self._client.pipeline(transaction=True)  # one round trip on every successful send
        pipe.delete(self._key(provider, "fails"))
        pipe.exists(self._key(provider, "tripped"))
        pipe.exists(self._key(provider, "open"))
        _, tripped, is_open = pipe.execute()
        if tripped and not is_open:
            self._client.delete(self._key(provider, "tripped"), self._key(provider, "probe"))
            log.info("circuit breaker for provider %s closed", provider)

    def __repr__(self) -> str:
        return f"RedisBreaker(prefix={self.prefix!r}, policy={self.policy})"


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


_shared: dict[tuple[str, OnOpen | None, BreakerPolicy | None], Breaker] = {}
_shared_lock = threading.Lock()


def breaker_for(settings: Settings, on_open: OnOpen | None = None, policy: BreakerPolicy | None = None) -> Breaker:
    """The process's breaker: Redis when HEXAVOX_REDIS_URL is set, else in-process. Built once per arguments."""
    key = (settings.redis_url, on_open, policy)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = (RedisBreaker(settings.redis_url, policy, on_open) if settings.redis_url
                            else LocalBreaker(policy, on_open))
        return _shared[key]


def reset_breakers() -> None:
    """Forget the process's breakers (tests change HEXAVOX_REDIS_URL between cases)."""
    with _shared_lock:
        _shared.clear()
