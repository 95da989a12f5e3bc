"""Per-key rules of seed 004 that only the HTTP door can check: the IP allowlist and the request rate.

The allowlist is a key's ``allowed_cidrs`` (empty: anywhere), matched against the client address uvicorn reports
(the peer, or the X-Forwarded-For of a trusted proxy: HEXAVOX_API_TRUSTED_PROXIES). The rate is the key's
``rate_limit_per_minute`` (else HEXAVOX_API_RATE_LIMIT), paced with the providers' GCRA throttle
(:mod:`providers.throttle`): in Redis, so every API process shares one budget per key, with a burst of one minute's
worth; a refused request reserves nothing and is told when the next one may go (Retry-After). When Redis cannot
be reached the request is let through (and logged): the limit protects capacity, it is not a rule of the policy.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from functools import lru_cache

import redis

from api.status import ApiError
from providers.throttle import LocalThrottle, RedisThrottle, Throttle
from worker.catalogue import Code
from worker.policy.auth import Principal
from worker.settings import Settings

__all__ = ["require_address", "require_rate", "reset_limiters"]

log = logging.getLogger(__name__)
_PREFIX = "hexavox:api-rate:"


def _parse_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The key's networks; an entry that is not a CIDR matches nothing (the key then refuses rather than opens)."""
    found = []
    for cidr in cidrs:
        try:
            found.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            continue
    return tuple(found)


#: Each distinct allowlist parsed once per process. The cache wraps a plain function rather than decorating it:
#: mutation testing (docs/mutation.md) leaves decorated functions out, and this parsing is the allowlist's rule.
#: :func:`reset_limiters` empties it too: a cache filled by the original function would hide a mutant of it.
_networks = lru_cache(maxsize=256)(_parse_networks)


def require_address(who: Principal, client_ip: str | None) -> None:
    """Refuse (E840, 403) a request from outside the key's allowlist; an unknown address is outside it too."""
    if not who.allowed_cidrs:
        return
    try:
        address = ipaddress.ip_address((client_ip or "").strip())
    except ValueError:
        raise ApiError(Code.CLIENT_IP_NOT_ALLOWED, "client address unknown") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not any(address.version == net.version and address in net for net in _networks(who.allowed_cidrs)):
        raise ApiError(Code.CLIENT_IP_NOT_ALLOWED, "this key does not accept requests from this address")


_limiters: dict[tuple[str, int], Throttle] = {}
_lock = threading.Lock()


def _limiter(settings: Settings, burst: int) -> Throttle:
    with _lock:
        key = (settings.redis_url, burst)
        if key not in _limiters:
            _limiters[key] = (RedisThrottle(settings.redis_url, burst=burst, prefix=_PREFIX) if settings.redis_url
                              else LocalThrottle(burst=burst))
        return _limiters[key]


def require_rate(who: Principal, settings: Settings) -> None:
    """Count one request against the key's budget, or refuse it (E843, 429) with the seconds to wait."""
    per_minute = who.rate_limit_per_minute if who.rate_limit_per_minute is not None else settings.api_rate_limit
    if per_minute <= 0:
        return
    try:
        wait = _limiter(settings, per_minute).acquire(who.key_id, per_minute / 60.0)
    except redis.RedisError as err:  # the limit protects capacity; an outage of its store must not stop sends
        log.warning("request rate of key %s not checked: Redis unavailable (%s)", who.key_id, type(err).__name__)
        return
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(Code.RATE_LIMITED, f"{per_minute} requests per minute for this key; retry in {seconds} s",
                       headers={"Retry-After": str(seconds)})


def reset_limiters() -> None:
    """Forget the process's limiters and parsed allowlists (tests point HEXAVOX_REDIS_URL elsewhere between cases)."""
    with _lock:
        _limiters.clear()
    _networks.cache_clear()
