"""The simulated registrar: decides as configured, after a configured delay, and keeps no state of its own.

Options (HEXAVOX_REGISTRAR_OPTIONS): the decision per kind (``BRAND``: VERIFIED | UNVERIFIED | FAILED,
``CAMPAIGN``: ACTIVE | REJECTED | SUSPENDED, ``ASSIGNMENT``: ASSIGNED | FAILED), ``delaySeconds`` before a
submission is decided (PENDING until then) and ``reasons`` given with a refusal. Decisions are read when asked, so a
test may change them between polls. Its webhook is signed like a real registrar's: HMAC-SHA256 over
``timestamp.body`` with HEXAVOX_REGISTRAR_WEBHOOK_SECRET (headers X-Registrar-Timestamp, X-Registrar-Signature).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from providers.registrars.base import Decision, Kind, Submission, Update
from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = ["SimulatedRegistrar", "sign_webhook"]

_DEFAULTS = {Kind.BRAND: "VERIFIED", Kind.CAMPAIGN: "ACTIVE", Kind.ASSIGNMENT: "ASSIGNED"}
_ACCEPTING = {"VERIFIED", "ACTIVE", "ASSIGNED"}


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The signature a webhook of ``body`` sent at ``timestamp`` carries."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class SimulatedRegistrar:
    def __init__(self, name: str, options: Mapping[str, Any], webhook_secret: str = "", tolerance: int = 300) -> None:
        self.name = name
        self._options = dict(options)
        self._secret, self._tolerance = webhook_secret, tolerance

    def submit(self, submission: Submission, now: dt.datetime) -> Decision:
        return Decision("PENDING", self._ref(submission.kind, submission.our_id))

    def lookup(self, kind: Kind, our_id: str, submitted_at: dt.datetime | None, now: dt.datetime) -> Decision:
        if submitted_at is None:
            return Decision(None)
        delay = float(self._options.get("delaySeconds", 0))
        if (now - submitted_at).total_seconds() < delay:
            return Decision("PENDING", self._ref(kind, our_id))
        status = str(self._options.get(kind.value, _DEFAULTS[kind])).upper()
        reasons = () if status in _ACCEPTING else tuple(str(r) for r in self._options.get("reasons", ["SIMULATED"]))
        return Decision(status, self._ref(kind, our_id), reasons)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Update]:
        lowered = {k.lower(): v for k, v in headers.items()}
        stamp, signature = lowered.get("x-registrar-timestamp", ""), lowered.get("x-registrar-signature", "")
        if not self._secret or not stamp.isdigit() or abs(time.time() - int(stamp)) > self._tolerance or not (
                hmac.compare_digest(signature, sign_webhook(self._secret, int(stamp), body))):
            raise ValidationError(Code.WEBHOOK_NOT_AUTHENTIC, "registrar webhook signature missing or wrong")
        try:
            rows = json.loads(body)["updates"]
            request = hashlib.sha256(signature.encode()).hexdigest()[:40]
            return [Update(Kind(str(r["kind"]).upper()), str(r["id"]), str(r["status"]).upper(),
                           tuple(str(x) for x in r.get("reasons", ())), event_id=f"{request}:{i}")
                    for i, r in enumerate(rows)]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValidationError(Code.INVALID_INPUT, "registrar webhook body is malformed") from None

    def _ref(self, kind: Kind, our_id: str) -> str:
        return f"sim-{kind.value.lower()}-{our_id}"
