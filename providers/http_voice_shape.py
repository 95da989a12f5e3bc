"""The wire shape of the HTTP voice API: one text-to-speech call per message.

``POST calls`` with JSON ``{to, text, record, timeoutSeconds, callerId, clientRef}`` and an ``X-Api-Key`` header;
the API answers ``{"callId": ..., "status": "queued"}`` or ``{"error": {"code": ..., "message": ...}}``. Starting
a call is not idempotent, so the same rules as SMS hold (providers/http_driver.py): one attempt, every outcome
through :mod:`providers.outcomes`. Our message id travels as ``clientRef`` so reconcile can find a call whose
answer was lost. Lookups and callbacks report the billed duration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from providers.base import MAX_CALL_SECONDS, DeliveryEvent, DeliveryStatus, OutboundMessage, ProviderRef, SendOutcome
from providers.http_common import HttpCall, parse_timestamp
from providers.http_driver import LookupReply, SendReply
from providers.outcomes import CodeTable
from schema.states import Channel
from worker.catalogue import Code

__all__ = ["VoiceShape", "VOICE_SEND_CODES", "VOICE_LOOKUP_CODES", "CALL_STATUSES", "DEFAULT_RING_SECONDS"]

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


class VoiceShape:
    """The voice API's requests and answers; transport and outcomes are providers.http_driver's."""

    kind = "voice"
    channel = Channel.VOICE
    send_codes = VOICE_SEND_CODES

    def __init__(self, caller_id: str) -> None:
        self._caller_id = caller_id

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"X-Api-Key": api_key}

    def send_call(self, message: OutboundMessage) -> HttpCall:
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

    def read_send(self, body: Any) -> SendReply:
        code, detail = _error(body)
        return SendReply(_text(body.get("callId")) if isinstance(body, dict) else None, code, detail)

    def status_call(self, ref: ProviderRef) -> HttpCall:
        if ref.provider_ref:
            return HttpCall("GET", f"calls/{ref.provider_ref}")
        return HttpCall("GET", "calls", params={"clientRef": ref.message_id})

    def read_status(self, body: Any) -> LookupReply:
        """Only the explicit CALL_NOT_FOUND code proves the call was never placed."""
        code, _ = _error(body)
        settled = VOICE_LOOKUP_CODES.get(code or "")
        if settled is not None:
            return LookupReply(settled, None, code)
        if not isinstance(body, dict) or code:
            return LookupReply(DeliveryStatus.UNKNOWN, None, code)
        return LookupReply(_call_status(body.get("status")), _text(body.get("callId")), _text(body.get("status")),
                           duration_seconds=_seconds(body.get("durationSeconds")))

    def reports(self, provider: str, payload: Any) -> list[DeliveryEvent]:
        """One call-status webhook (JSON or form) becomes one event per entry, with the entry as ``raw``."""
        entries = payload if isinstance(payload, list) else [payload]
        return [_event(provider, entry) for entry in entries if isinstance(entry, dict)]


def _event(provider: str, entry: dict[str, Any]) -> DeliveryEvent:
    return DeliveryEvent(
        provider=provider, status=_call_status(entry.get("status")), provider_ref=_text(entry.get("callId")),
        message_id=_text(entry.get("clientRef")), event_id=_text(entry.get("eventId")),
        occurred_at=parse_timestamp(entry.get("timestamp")), provider_code=_text(entry.get("status")),
        duration_seconds=_seconds(entry.get("durationSeconds")), raw=entry,
    )
