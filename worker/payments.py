"""The payment webhook: the payment side tells us a payment succeeded or failed, and only then are units credited.

``POST /payments/webhook`` on ``hexavox web``, signed with the Standard Webhooks scheme (the same one our own
dlrUrl callbacks use, worker/callbacks/signing.py): ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature:
v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with ``HEXAVOX_PAYMENT_WEBHOOK_SECRET``. A timestamp more than
``HEXAVOX_WEBHOOK_TOLERANCE`` seconds off is refused, so a captured request cannot be replayed later; inside the
window a replay changes nothing, because a payment is settled once (worker/policy/billing.py).

Body: ``{"type": "payment.succeeded" | "payment.failed", "data": {"paymentId", "amountCents", "currency"}}``,
``paymentId`` being the one the upgrade answer gave the merchant. Answers (status, JSON): 200 with the upgrade;
401 E827 (signature or time); 400 E413 (body); 404 E826 (no such payment); 422 E825 (amount or currency is not
the upgrade's price; nothing credited); 404 when no secret is configured (the webhook is off); 503 when the
database is down (the payment side retries). The database is used here, unlike the delivery-report path: a
confirmation is one row, and the payment side must learn at once whether it was taken.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from worker.callbacks.signing import SecretError, verify
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.billing import CURRENCY, confirm_payment
from worker.settings import Settings

__all__ = ["EVENTS", "MAX_PAYMENT_BODY_BYTES", "handle_payment_webhook"]

log = logging.getLogger(__name__)

#: Event type -> whether the payment succeeded.
EVENTS = {"payment.succeeded": True, "payment.failed": False}
#: A payment event is a few hundred bytes.
MAX_PAYMENT_BODY_BYTES = 16 * 1024
_STATUS = {Code.WEBHOOK_NOT_AUTHENTIC: 401, Code.PAYMENT_NOT_FOUND: 404, Code.BILLING_AMOUNT_MISMATCH: 422}


def handle_payment_webhook(settings: Settings, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """Check, parse and apply one payment event; the HTTP status and JSON answer."""
    if not settings.payment_webhook_secret:
        return 404, {"detail": "payment webhook not configured"}
    try:
        _authenticate(settings, headers, body)
        succeeded, payment_id, amount, currency = _parse(body)
        with session_scope() as session:
            result = confirm_payment(session, payment_id, succeeded=succeeded, amount_cents=amount, currency=currency)
    except Refusal as refusal:
        log.warning("payment webhook refused: %s", refusal.code.value)
        return _STATUS.get(refusal.code, 400), refusal.as_dict()
    except SecretError:
        log.error("HEXAVOX_PAYMENT_WEBHOOK_SECRET is not a valid whsec_ secret")
        return 503, {"detail": "temporarily unavailable"}
    log.info("payment %s: %s", payment_id, result["paymentStatus"])
    return 200, result


def _authenticate(settings: Settings, headers: dict[str, str], body: bytes) -> None:
    if not verify([settings.payment_webhook_secret], headers, body, now=int(time.time()),
                  tolerance=settings.webhook_tolerance):
        raise Refusal(Code.WEBHOOK_NOT_AUTHENTIC, "payment webhook signature or timestamp refused")


def _parse(body: bytes) -> tuple[bool, str, int | None, str]:
    """(succeeded, paymentId, amountCents, currency) of a well-formed event, else E413."""
    try:
        event = json.loads(body)
    except ValueError:
        raise Refusal(Code.INVALID_INPUT, "payment webhook body is not JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in EVENTS or not isinstance(data, dict):
        raise Refusal(Code.INVALID_INPUT, f"type must be one of {sorted(EVENTS)} with a data object", field="type")
    payment_id, amount, currency = data.get("paymentId"), data.get("amountCents"), data.get("currency", CURRENCY)
    if not isinstance(payment_id, str) or not 0 < len(payment_id) <= 100:
        raise Refusal(Code.INVALID_INPUT, "paymentId must be a string", field="paymentId")
    if EVENTS[str(kind)] and (type(amount) is not int or not isinstance(currency, str)):
        raise Refusal(Code.INVALID_INPUT, "a succeeded payment needs amountCents (integer) and currency",
                      field="amountCents")
    return EVENTS[str(kind)], payment_id, amount if type(amount) is int else None, str(currency)
