"""The simulated provider's webhook: delivery reports and inbound replies as JSON, signed like the HTTP drivers'."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from providers.base import DeliveryEvent, DeliveryStatus
from providers.http_common import signed_webhook_headers, verify_signature
from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = ["SIGNATURE_HEADER", "parse_events", "sign_callback"]

#: Callback status words and what they mean; anything else is UNKNOWN (never a guessed success).
_CALLBACK_STATUS: dict[str, DeliveryStatus] = {
    "ACCEPTED": DeliveryStatus.ACCEPTED,
    "SENT": DeliveryStatus.ACCEPTED,
    "DELIVERED": DeliveryStatus.DELIVERED,
    "FAILED": DeliveryStatus.FAILED,
    "UNDELIVERED": DeliveryStatus.FAILED,
}
SIGNATURE_HEADER = "x-simulator-signature"


def parse_events(provider: str, headers: Mapping[str, str], body: bytes, secret: str) -> list[DeliveryEvent]:
    """One JSON object or a list of them: delivery reports, or inbound replies with ``"type": "reply"``.

    Signed with the HTTP drivers' scheme (id and time signed with the body) under the simulator's own header name,
    when ``secret`` is set.
    """
    verify_signature(headers, body, secret or None, signature_header=SIGNATURE_HEADER)
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise ValidationError(Code.INVALID_INPUT, f"simulator callback is not JSON: {err}") from err
    items = payload if isinstance(payload, list) else [payload]
    return [_event(provider, item) for item in items]


def _event(provider: str, item: object) -> DeliveryEvent:
    if not isinstance(item, dict):
        raise ValidationError(Code.INVALID_INPUT, "each simulator callback event must be a JSON object")
    common: dict[str, Any] = {
        "provider": provider, "event_id": _opt_str(item, "eventId"), "occurred_at": _parse_at(item.get("at")),
        "raw": item,
    }
    if item.get("type") == "reply":
        return DeliveryEvent(status=DeliveryStatus.UNKNOWN, reply_from=_opt_str(item, "from"),
                             reply_to=_opt_str(item, "to"), reply_text=_opt_str(item, "text"), **common)
    status = _CALLBACK_STATUS.get(str(item.get("status", "")).upper(), DeliveryStatus.UNKNOWN)
    duration = item.get("duration")
    return DeliveryEvent(status=status, provider_ref=_opt_str(item, "ref"), message_id=_opt_str(item, "messageId"),
                         provider_code=_opt_str(item, "code"),
                         duration_seconds=duration if isinstance(duration, int) else None, **common)


def _opt_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    return None if value is None else str(value)


def _parse_at(value: object) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as err:
        raise ValidationError(Code.INVALID_INPUT, f"callback 'at' is not an ISO 8601 time: {value!r}") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def sign_callback(secret: str, body: bytes, *, webhook_id: str | None = None,
                  timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign ``body`` with the configured callback secret: delivery id, time and SIGNATURE_HEADER."""
    return signed_webhook_headers(secret, body, webhook_id=webhook_id, timestamp=timestamp,
                                  signature_header=SIGNATURE_HEADER)
