"""Merchant delivery-report callbacks: sign (Standard Webhooks), vet the URL (SSRF), deliver once.

Split in three small modules so each can be reviewed against its own threat: forged callbacks
(:mod:`.signing`), callbacks aimed at our own network (:mod:`.egress`), and hostile or slow
receivers (:mod:`.deliver`).
"""

from __future__ import annotations

from worker.callbacks.deliver import MAX_ATTEMPTS, DeliveryAttempt, backoff_seconds, deliver, retry_window_seconds
from worker.callbacks.egress import PinnedTarget, ResolutionError, is_forbidden_ip, resolve_public
from worker.callbacks.signing import SecretError, new_secret, sign, signature_headers, verify

__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryAttempt",
    "PinnedTarget",
    "ResolutionError",
    "SecretError",
    "backoff_seconds",
    "deliver",
    "is_forbidden_ip",
    "new_secret",
    "resolve_public",
    "retry_window_seconds",
    "sign",
    "signature_headers",
    "verify",
]
