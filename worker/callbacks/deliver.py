"""POST one signed delivery report to a merchant's ``dlrUrl``, once, within a hard deadline.

One call is one attempt; the caller (a Celery task) owns the retry schedule via
:func:`backoff_seconds` and :data:`MAX_ATTEMPTS`, so nothing here retries behind its back (httpx
transport ``retries=0``). What the merchant's server can do to us is bounded:

* it cannot choose where we connect: the URL is vetted by :func:`~worker.callbacks.egress.resolve_public`
  and we connect to the pinned IP, sending the real name in ``Host`` and as TLS SNI (so the
  certificate is still checked against the merchant's name); a redirect is a failed attempt, never
  followed, because following it would bypass the vetting;
* it cannot hold the worker: per-phase timeouts plus one overall deadline around the whole exchange
  (a server that trickles a byte every few seconds never trips a read timeout);
* it cannot fill our memory: the response is streamed raw (no decompression) and dropped after
  ``max_response_bytes``.

Outcomes: 2xx is ``delivered``; 3xx, 4xx, 5xx, timeouts and network errors are ``retry`` (Standard
Webhooks: anything but 2xx is a failure); a URL the guard refuses is ``refused``, permanently.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import httpx

from worker.callbacks.egress import PinnedTarget, ResolutionError, Resolver, resolve_public
from worker.errors import ValidationError

__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryAttempt",
    "deliver",
    "backoff_seconds",
    "retry_window_seconds",
]

#: Attempts per callback, first one included. With :func:`backoff_seconds`' defaults (5 s base,
#: doubling, capped at 6 h, full jitter) the 19 waits have ceilings 5 s, 10 s, 20 s ... 1.4 h,
#: 2.8 h, 5.7 h, then 6 h six times: a merchant outage of about a day (mean total wait 23.7 h) to
#: two days (upper bound 47.4 h) is ridden out before the report is given up.
MAX_ATTEMPTS = 20
#: Connecting to a healthy endpoint takes milliseconds; past this the host is down or filtered.
_CONNECT_TIMEOUT = 10.0
_USER_AGENT = "hexavox-worker-callbacks/1"
#: Headers we control: the caller must not be able to re-point ``Host`` or break the framing.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
     "proxy-authorization", "proxy-connection"}
)

Outcome = Literal["delivered", "retry", "refused"]


@dataclass(frozen=True)
class DeliveryAttempt:
    """What one attempt achieved; ``outcome`` alone decides what the caller does next."""

    outcome: Outcome
    status_code: int | None
    #: Short reason for a ``retry``/``refused`` (never the URL, which may carry a merchant token).
    error: str
    #: Response bytes read (at most ``max_response_bytes``) and whether the rest was dropped.
    response_bytes: int = 0
    truncated: bool = False
    elapsed: float = 0.0


@dataclass
class _Progress:
    """Filled in as the exchange goes, so a deadline hit after the status line still knows the status."""

    status: int | None = None
    received: int = 0
    truncated: bool = False


def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    timeout: float = 15.0,
    max_response_bytes: int = 65536,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    allowed_ports: Collection[int] | None = None,
) -> DeliveryAttempt:
    """POST ``body`` (the exact signed bytes) to ``url`` once and classify the result.

    ``timeout`` is the overall deadline for the attempt, name resolution included; each network
    phase also has its own timeout no longer than what is left. ``allow_private`` is for tests
    (``Settings.allow_private_callbacks``) and admits loopback only. ``ssl_context`` replaces the
    default CA store (tests with a private CA); hostname checking stays on whatever is passed.
    Once a 2xx status line has arrived the report counts as delivered even if the deadline or the
    cap then cuts the body: the merchant has it, and a retry would only deliver a duplicate.
    Blocking: call it from synchronous code such as a Celery task, not from a running event loop.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if max_response_bytes < 0:
        raise ValueError("max_response_bytes must not be negative")
    outgoing = _request_headers(headers)
    # Built before the clock starts: loading the CA bundle is our cost, not the merchant's deadline.
    verify = ssl_context if ssl_context is not None else _default_ssl_context()
    started = time.monotonic()

    def attempt(outcome: Outcome, status: int | None, error: str, progress: _Progress | None = None) -> DeliveryAttempt:
        received = min(progress.received, max_response_bytes) if progress else 0
        truncated = progress.truncated if progress else False
        return DeliveryAttempt(outcome, status, error, received, truncated, time.monotonic() - started)

    try:
        target = resolve_public(url, allow_private=allow_private, resolver=resolver, allowed_ports=allowed_ports)
    except ValidationError as exc:
        return attempt("refused", None, exc.detail)
    except ResolutionError as exc:
        return attempt("retry", None, str(exc))
    remaining = timeout - (time.monotonic() - started)
    if remaining <= 0:
        return attempt("retry", None, "deadline exceeded while resolving the callback host")

    outgoing["Host"] = target.host_header
    progress = _Progress()
    error = _run(target, body, outgoing, remaining, max_response_bytes, verify, progress)
    status = progress.status
    if status is not None and 200 <= status < 300:
        return attempt("delivered", status, error, progress)
    if status is None:
        return attempt("retry", None, error, progress)
    if 300 <= status < 400:
        return attempt("retry", status, f"HTTP {status}: redirects are not followed", progress)
    return attempt("retry", status, f"HTTP {status}", progress)


def _request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy the caller's headers, refusing ones we own and any that could split the request."""
    out = {"User-Agent": _USER_AGENT, "Content-Type": "application/json", "Accept-Encoding": "identity"}
    lowered_defaults = {name.lower(): name for name in out}
    for name, value in headers.items():
        if any(ch in name or ch in value for ch in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"header {name!r} contains a forbidden character")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by deliver() itself")
        default = lowered_defaults.get(name.lower())
        if default is not None:
            del out[default]
        out[name] = value
    return out


def _run(
    target: PinnedTarget,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    cap: int,
    verify: ssl.SSLContext,
    progress: _Progress,
) -> str:
    """Run the exchange under one deadline; return the error text ('' when the exchange finished).

    asyncio is used only because cancellation is the one way to stop an HTTP exchange at an exact
    moment (sync httpx only has per-read timeouts); the event loop lives for this call alone.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("deliver() blocks; call it from synchronous code, not from a running event loop")

    async def bounded() -> None:
        async with asyncio.timeout(deadline):
            await _exchange(target, body, headers, deadline, cap, verify, progress)

    try:
        asyncio.run(bounded())
    except httpx.TimeoutException as exc:
        return f"timeout ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    except TimeoutError:
        return "deadline exceeded"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return ""


async def _exchange(
    target: PinnedTarget,
    body: bytes,
    headers: dict[str, str],
    phase_timeout: float,
    cap: int,
    verify: ssl.SSLContext,
    progress: _Progress,
) -> None:
    """Send the POST to the pinned IP and read at most ``cap`` response bytes."""
    timeouts = httpx.Timeout(
        connect=min(_CONNECT_TIMEOUT, phase_timeout), read=phase_timeout, write=phase_timeout, pool=phase_timeout
    )
    # trust_env=False: an HTTP(S)_PROXY from the environment would re-resolve the name and undo the pin.
    transport = httpx.AsyncHTTPTransport(verify=verify, retries=0, trust_env=False)
    async with httpx.AsyncClient(
        transport=transport, follow_redirects=False, timeout=timeouts, trust_env=False
    ) as client:
        # SNI and certificate checks use the merchant's name even though we connect to an IP.
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = client.build_request(
            "POST", target.connect_url, content=body, headers=headers, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            progress.status = response.status_code
            # Raw bytes: no gzip decoding, so the cap bounds what the server sends, not what it expands to.
            async for chunk in response.aiter_raw():
                progress.received += len(chunk)
                if progress.received > cap:
                    progress.truncated = True
                    break
        finally:
            await response.aclose()


@lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's verifying context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once per process.

    Loading the CA bundle takes ~0.2 s; a fresh client per callback would otherwise pay it every time.
    """
    return httpx.create_ssl_context(verify=True, trust_env=True)


def backoff_seconds(
    attempt: int,
    *,
    base: float = 5,
    cap: float = 6 * 3600,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter.

    Uniform in ``[0, min(cap, base * 2**(attempt-1))]``: the exponential ceiling backs off from a
    merchant that is down, and the full jitter spreads the retries of many callbacks that failed
    together (one merchant outage) instead of hammering the endpoint in waves when it comes back.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 60))
    return random.uniform(0, ceiling) if rng is None else rng.uniform(0, ceiling)


def retry_window_seconds(
    max_attempts: int = MAX_ATTEMPTS, *, base: float = 5, cap: float = 6 * 3600
) -> tuple[float, float]:
    """``(mean, upper bound)`` of the total wait before the last of ``max_attempts`` attempts."""
    ceilings = [min(cap, base * 2.0 ** min(n - 1, 60)) for n in range(1, max_attempts)]
    total = sum(ceilings)
    return total / 2, total
