"""HTTP voice driver: one text-to-speech call per message.

``POST calls`` with JSON ``{to, text, record, timeoutSeconds, callerId, clientRef}`` and an ``X-Api-Key`` header;
the API answers ``{"callId": ..., "status": "queued"}`` or ``{"error": {"code": ..., "message": ...}}``. Starting
a call is not idempotent, so the same rules as SMS hold: one attempt, failures classified by
:mod:`providers.http_common`, provider codes through module-level tables. Our message id travels as ``clientRef``
so reconcile can find a call whose answer was lost. Lookups and callbacks report the billed duration.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Self

import httpx

from providers.base import (
    MAX_CALL_SECONDS,
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.http_common import (
    CodeTable,
    HttpCall,
    OptionReader,
    make_client,
    outcome_for_error,
    outcome_for_http_status,
    parse_timestamp,
    parse_webhook_body,
    perform,
    raw_error,
    raw_response,
    result_from_code,
    result_from_outcome,
    verify_signature,
)
from schema.states import Channel
from worker.catalogue import Code
from worker.settings import Settings

__all__ = ["HttpVoiceProvider", "VOICE_SEND_CODES", "VOICE_LOOKUP_CODES", "CALL_STATUSES", "DEFAULT_RING_SECONDS"]

log = logging.getLogger(__name__)

#: Seconds the callee's phone rings when the job gives no ``timeoutSeconds`` (the API allows 5-120).
DEFAULT_RING_SECONDS = 30

_R, _U, _A = SendOutcome.REJECTED, SendOutcome.UNAVAILABLE, SendOutcome.AMBIGUOUS
#: The voice API's error codes: refusals of this call are REJECTED; our account, limits and capacity are
#: UNAVAILABLE (nothing dialled, another provider may take it); an internal error may come after dialling.
VOICE_SEND_CODES: CodeTable = {
    "INVALID_NUMBER": (_R, Code.INVALID_MOBILE_NUMBER),
    "INVALID_TEXT": (_R, Code.INVALID_VOICE_REQUEST),
    "TEXT_TOO_LONG": (_R, Code.INVALID_VOICE_REQUEST),
    "INVALID_TIMEOUT": (_R, Code.INVALID_VOICE_REQUEST),
    "INVALID_CALLER_ID": (_R, Code.INVALID_SENDER_PATTERN),
    "DESTINATION_BLOCKED": (_R, Code.DESTINATION_NOT_ALLOWED),
    "INSUFFICIENT_FUNDS": (_R, Code.INSUFFICIENT_BALANCE),
    "AUTH_FAILED": (_U, None),
    "RATE_LIMITED": (_U, None),
    "CAPACITY": (_U, None),
    "INTERNAL": (_A, None),
}
#: Lookup error codes that settle a status: the API never saw a call with this id or client reference.
VOICE_LOOKUP_CODES: Mapping[str, DeliveryStatus] = {"CALL_NOT_FOUND": DeliveryStatus.NOT_FOUND}
#: Call states: an answered call is delivered (billed by duration); busy, unanswered or failed calls are not.
CALL_STATUSES: Mapping[str, DeliveryStatus] = {
    **dict.fromkeys(("queued", "initiated", "ringing", "in-progress"), DeliveryStatus.ACCEPTED),
    **dict.fromkeys(("answered", "completed"), DeliveryStatus.DELIVERED),
    **dict.fromkeys(("busy", "no-answer", "failed", "canceled", "rejected"), DeliveryStatus.FAILED),
}

_OPTIONS = frozenset({"base_url", "api_key", "caller_id", "max_rps", "timeout", "webhook_secret"})


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _seconds(value: object) -> int | None:
    """A duration as whole seconds; anything unreadable (not a number, NaN, infinite such as ``"1e400"``, negative
    or longer than :data:`MAX_CALL_SECONDS`) is None rather than a guessed bill or a crash."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or value == "":
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_CALL_SECONDS:
        return None
    return int(seconds)


def _call_status(value: object) -> DeliveryStatus:
    return CALL_STATUSES.get(str(value).strip().lower(), DeliveryStatus.UNKNOWN) if value else DeliveryStatus.UNKNOWN


def _error(body: Any) -> tuple[str | None, str]:
    """The ``error.code`` and ``error.message`` of an answer, if it has them."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    return _text(error.get("code")), str(error.get("message", ""))


class HttpVoiceProvider:
    """One configured voice API. Options: ``base_url``, ``api_key`` (secret), ``caller_id`` (default caller id),
    ``max_rps``, ``timeout`` (seconds, default HEXAVOX_PROVIDER_TIMEOUT), ``webhook_secret`` (secret)."""

    channels = frozenset({Channel.VOICE})

    def __init__(self, name: str, client: httpx.Client, *, caller_id: str, max_rps: float,
                 webhook_secret: str | None) -> None:
        self.name = name
        self.max_rps = max_rps
        self._client = client
        self._caller_id = caller_id
        self._webhook_secret = webhook_secret  # secret: kept out of __repr__

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], settings: Settings) -> Self:
        read = OptionReader("http_voice", name, options, _OPTIONS)
        client = make_client(read.text("base_url"), read.number("timeout", settings.provider_timeout),
                             {"X-Api-Key": read.text("api_key")})
        return cls(name, client, caller_id=read.text("caller_id", ""), max_rps=read.number("max_rps", 0.0),
                   webhook_secret=read.text("webhook_secret", "") or None)

    def __repr__(self) -> str:
        return f"HttpVoiceProvider(name={self.name!r}, base_url={self._client.base_url})"

    def close(self) -> None:
        self._client.close()

    def _call(self, message: OutboundMessage) -> HttpCall:
        options = message.options
        payload = {
            "to": message.recipient,
            "text": message.body,
            "record": bool(options.get("record", False)),
            "timeoutSeconds": _seconds(options.get("timeoutSeconds")) or DEFAULT_RING_SECONDS,
            "callerId": message.sender or self._caller_id,
            "clientRef": message.message_id,
        }
        return HttpCall("POST", "calls", json=payload)

    def send(self, message: OutboundMessage) -> SendResult:
        """Start the call once; a lost answer is AMBIGUOUS because the phone may already be ringing."""
        try:
            response = perform(self._client, self._call(message))
        except httpx.HTTPError as err:
            result = outcome_for_error(self.name, err)
        else:
            result = self._read_send(response)
        log.info("voice send via %s: %s %s", self.name, result.outcome, result.provider_code or result.detail)
        return result

    def _read_send(self, response: httpx.Response) -> SendResult:
        raw = raw_response(response)
        body = raw["body"]
        call_id = _text(body.get("callId")) if isinstance(body, dict) else None
        if call_id and response.is_success:
            return SendResult.accepted(self.name, call_id, raw=raw)
        code, detail = _error(body)
        if code:
            return result_from_code(self.name, code, VOICE_SEND_CODES, detail=detail, raw=raw)
        outcome = outcome_for_http_status(response.status_code)
        return result_from_outcome(self.name, outcome, detail=f"HTTP {response.status_code}", raw=raw)

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        """The call's state and billed duration, by call id or, without one, by our client reference."""
        if ref.provider_ref:
            call = HttpCall("GET", f"calls/{ref.provider_ref}")
        else:
            call = HttpCall("GET", "calls", params={"clientRef": ref.message_id})
        try:
            response = perform(self._client, call)
        except httpx.HTTPError as err:
            return StatusResult(DeliveryStatus.UNKNOWN, provider_ref=ref.provider_ref, raw=raw_error(err))
        raw = raw_response(response)
        return _lookup(raw, ref)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """One call-status webhook (JSON or form) becomes one event, with the payload as ``raw``."""
        verify_signature(headers, body, self._webhook_secret)
        payload = parse_webhook_body(headers, body)
        entries = payload if isinstance(payload, list) else [payload]
        return [self._event(entry) for entry in entries if isinstance(entry, dict)]

    def _event(self, entry: dict[str, Any]) -> DeliveryEvent:
        return DeliveryEvent(
            provider=self.name, status=_call_status(entry.get("status")), provider_ref=_text(entry.get("callId")),
            message_id=_text(entry.get("clientRef")), event_id=_text(entry.get("eventId")),
            occurred_at=parse_timestamp(entry.get("timestamp")), provider_code=_text(entry.get("status")),
            duration_seconds=_seconds(entry.get("durationSeconds")), raw=entry,
        )


def _lookup(raw: dict[str, Any], ref: ProviderRef) -> StatusResult:
    """Read a lookup answer: only the explicit CALL_NOT_FOUND code proves the call was never placed."""
    body = raw["body"]
    code, _ = _error(body)
    settled = VOICE_LOOKUP_CODES.get(code or "")
    if settled is not None:
        return StatusResult(settled, provider_ref=ref.provider_ref, provider_code=code, raw=raw)
    if not isinstance(body, dict) or code:
        return StatusResult(DeliveryStatus.UNKNOWN, provider_ref=ref.provider_ref, provider_code=code, raw=raw)
    return StatusResult(
        _call_status(body.get("status")), provider_ref=_text(body.get("callId")) or ref.provider_ref,
        provider_code=_text(body.get("status")), duration_seconds=_seconds(body.get("durationSeconds")), raw=raw,
    )
