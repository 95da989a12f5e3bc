"""Shared plumbing for the HTTP provider drivers: one client recipe and one place that decides what a failure means.

Sending an SMS or starting a call is not idempotent (docs/reliability.md R4), so the client never retries on its own:
``retries=0``, no redirects, and every phase of the call has its own timeout. When a call fails, the only question
that matters is whether the request may have reached the provider. :func:`outcome_for_error` answers it once for
every driver through :mod:`providers.outcomes`: errors that prove nothing was written are UNAVAILABLE (safe to
retry or fail over), everything after the request may have been written is AMBIGUOUS (reconcile, never resend).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from providers.base import SendOutcome, SendResult
from providers.outcomes import (
    HTTP_STATUS_OUTCOMES,
    CodeTable,
    HttpStatus,
    ProviderCode,
    TransportFailure,
    classify,
    result_for,
)
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import get_settings

__all__ = [
    "CONNECT_TIMEOUT_CAP",
    "HTTP_STATUS_OUTCOMES",
    "CodeTable",
    "HttpCall",
    "make_client",
    "perform",
    "outcome_for_error",
    "outcome_for_http_status",
    "result_from_code",
    "result_from_status",
    "raw_response",
    "raw_error",
    "header",
    "SIGNATURE_HEADER",
    "WEBHOOK_ID_HEADER",
    "WEBHOOK_TIMESTAMP_HEADER",
    "signed_webhook_headers",
    "webhook_id_of",
    "webhook_signature",
    "verify_signature",
    "parse_webhook_body",
    "parse_timestamp",
    "OptionReader",
]

#: Seconds a TCP connect may take at most: a refused or silent connect is safe to fail over, so fail it fast.
CONNECT_TIMEOUT_CAP = 5.0

@dataclass(frozen=True)
class HttpCall:
    """One request a driver wants made, kept as data so tests and logs can see it without secrets."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None


def make_client(base_url: str, timeout: float, headers: Mapping[str, str]) -> httpx.Client:
    """A client that never retries, never follows redirects and bounds every phase of a call.

    An explicit transport also keeps httpx from picking proxies out of the environment.
    """
    limits = httpx.Timeout(connect=min(timeout, CONNECT_TIMEOUT_CAP), read=timeout, write=timeout, pool=timeout)
    return httpx.Client(
        base_url=base_url.rstrip("/") + "/",
        timeout=limits,
        transport=httpx.HTTPTransport(retries=0),
        follow_redirects=False,
        headers=dict(headers),
    )


def perform(client: httpx.Client, call: HttpCall) -> httpx.Response:
    """Make ``call`` once. Raises httpx errors for :func:`outcome_for_error` to classify."""
    return client.request(call.method, call.path.lstrip("/"), params=call.params, json=call.json, data=call.data)


def outcome_for_error(provider: str, err: httpx.HTTPError) -> SendResult:
    """UNAVAILABLE when ``err`` proves the request never left, else AMBIGUOUS (it may have been processed)."""
    verdict = classify(TransportFailure(err))
    phrase = "request not sent" if verdict.outcome is SendOutcome.UNAVAILABLE else "request may have been received"
    return result_for(provider, TransportFailure(err), detail=f"{phrase}: {type(err).__name__}", raw=raw_error(err))


def outcome_for_http_status(status: int) -> SendOutcome:
    """What an HTTP status alone says, for answers without a provider code we know."""
    return classify(HttpStatus(status)).outcome


def result_from_code(provider: str, code: str, table: CodeTable, *, detail: str, raw: Any) -> SendResult:
    """Translate a provider error code through ``table``; a code the table lacks is AMBIGUOUS, never a success."""
    return result_for(provider, ProviderCode(code, table), detail=detail, raw=raw)


def result_from_status(provider: str, status: int, *, detail: str, raw: Any) -> SendResult:
    """The result of an HTTP answer that carries no provider code we know."""
    return result_for(provider, HttpStatus(status), detail=detail, raw=raw)


def raw_response(response: httpx.Response) -> dict[str, Any]:
    """The provider's answer as kept on the message: HTTP status and the body, parsed when it is JSON."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:4000]
    return {"http_status": response.status_code, "body": body}


def raw_error(err: Exception) -> dict[str, str]:
    """A transport failure as kept on the message (there is no provider payload to keep)."""
    return {"error": type(err).__name__, "detail": str(err)[:500]}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up case-insensitively: webhook frameworks hand them over in any case."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


#: The inbound webhook scheme of our HTTP drivers (and the simulator): a unique id of the delivery, its Unix time,
#: and ``sha256=<hex HMAC-SHA256(secret, "{timestamp}.{id}." + raw body)>``.
WEBHOOK_ID_HEADER = "X-Webhook-Id"
WEBHOOK_TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Signature"
_WEBHOOK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def webhook_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The signature header value of one delivery: the id and the time are signed with the body."""
    signed = f"{timestamp}.{webhook_id}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_webhook_headers(secret: str, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None,
                           signature_header: str = SIGNATURE_HEADER) -> dict[str, str]:
    """The three headers a provider (or a test standing in for one) sends with ``body``."""
    webhook_id = webhook_id or uuid.uuid4().hex
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {WEBHOOK_ID_HEADER: webhook_id, WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
            signature_header: webhook_signature(secret, webhook_id, timestamp, body)}


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str | None, *, tolerance: int | None = None,
                     now: float | None = None, signature_header: str = SIGNATURE_HEADER) -> None:
    """Check a delivery's signature, id and time when a webhook secret is configured; E827 otherwise.

    The id and the timestamp are signed with the body, so a captured delivery can be neither re-dated nor given a
    new id: outside ``tolerance`` seconds (HEXAVOX_WEBHOOK_TOLERANCE) it is refused, inside it its events keep
    their ids and are applied once (worker/policy/delivery_reports.py). Compared in constant time. Without a secret
    every callback is accepted: development only, since production refuses to start so (worker/settings.py).
    """
    if not secret:
        return
    webhook_id = (header(headers, WEBHOOK_ID_HEADER) or "").strip()
    raw_time = (header(headers, WEBHOOK_TIMESTAMP_HEADER) or "").strip()
    given = (header(headers, signature_header) or "").strip().lower()
    if not _WEBHOOK_ID.match(webhook_id) or not (raw_time.isascii() and raw_time.isdigit() and len(raw_time) <= 12):
        raise _not_authentic("webhook id or timestamp missing or malformed")
    timestamp = int(raw_time)
    window = get_settings().webhook_tolerance if tolerance is None else tolerance
    if abs((time.time() if now is None else now) - timestamp) > window:
        raise _not_authentic(f"webhook timestamp more than {window} s away")
    expected = webhook_signature(secret, webhook_id, timestamp, body)
    if not given.startswith("sha256="):
        given = "sha256=" + given
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise _not_authentic("webhook signature does not match")


def webhook_id_of(headers: Mapping[str, str]) -> str | None:
    """The delivery's id, when it has a well-formed one (signed whenever a secret is configured)."""
    value = (header(headers, WEBHOOK_ID_HEADER) or "").strip()
    return value if _WEBHOOK_ID.match(value) else None


def _not_authentic(detail: str) -> ValidationError:
    return ValidationError(Code.WEBHOOK_NOT_AUTHENTIC, detail, field=SIGNATURE_HEADER)


def parse_webhook_body(headers: Mapping[str, str], body: bytes) -> Any:
    """A webhook body as JSON or as a form, by content type; providers send either."""
    content_type = (header(headers, "Content-Type") or "").lower()
    try:
        text = body.decode("utf-8")
        if "application/x-www-form-urlencoded" in content_type:
            return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        return json.loads(text)
    except ValueError as err:
        raise ValidationError(Code.INVALID_INPUT, f"unreadable webhook body: {err}") from err


def parse_timestamp(value: object) -> dt.datetime | None:
    """An ISO 8601 string or epoch seconds as an aware datetime; anything else is None (the event still counts)."""
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            return dt.datetime.fromtimestamp(float(value), dt.UTC)
        if isinstance(value, str) and value:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


class OptionReader:
    """Reads a driver's configured options, refusing unknown keys so a typo fails at start-up, not at 3 a.m."""

    def __init__(self, driver: str, name: str, options: Mapping[str, Any], known: frozenset[str]) -> None:
        unknown = sorted(set(options) - known - {"driver"})
        if unknown:
            raise ConfigurationError(f"provider {name!r} ({driver}): unknown options {', '.join(unknown)}")
        self._where = f"provider {name!r} ({driver})"
        self._options = options

    def text(self, key: str, default: str | None = None) -> str:
        value = self._options.get(key, default)
        if value is None or not isinstance(value, str) or (default is None and not value):
            raise ConfigurationError(f"{self._where}: option {key!r} must be a non-empty string")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigurationError(f"{self._where}: option {key!r} must be a number")
        try:
            number = float(value)
        except ValueError as err:
            raise ConfigurationError(f"{self._where}: option {key!r} must be a number") from err
        if number < 0:
            raise ConfigurationError(f"{self._where}: option {key!r} must not be negative")
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self._options.get(key, default)
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        if not isinstance(value, bool):
            raise ConfigurationError(f"{self._where}: option {key!r} must be a boolean")
        return value
