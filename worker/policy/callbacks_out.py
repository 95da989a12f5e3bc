"""Outbound dlrUrl callbacks: claim due rows, send each signed, record what happened (docs/reliability.md S1/S2).

:func:`worker.policy.transitions.transition` writes one ``outbound_callbacks`` row (PENDING, due now,
``body`` = the exact bytes to sign and send) in the transaction that makes a message FINAL. Here:

* :func:`claim_due` leases a batch: one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT n) RETURNING`` pushes ``next_attempt_at`` forward by :data:`LEASE_SECONDS` and commits, so two
  workers never send the same row at once, and a worker killed mid-batch only delays its rows by the lease
  (at-least-once: receivers dedupe on ``webhook-id``). On SQLite the ``FOR UPDATE`` is dropped and the
  single statement is atomic under the database write lock.
* :func:`send_one` signs with every secret of the merchant (rotation), with ``webhook-id`` = the row id so
  every retry of one event carries the same id, and a fresh ``webhook-timestamp`` per attempt (receivers
  reject stale ones). It records: delivered -> DELIVERED; refused URL -> FAILED with E819; anything else ->
  retry after :func:`~worker.callbacks.deliver.backoff_seconds`, FAILED after
  :data:`~worker.callbacks.deliver.MAX_ATTEMPTS`.

Times are this host's UTC clock, like the ``next_attempt_at`` that :mod:`worker.policy.transitions` writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schema.models import Merchant, OutboundCallback
from schema.states import CallbackState
from worker.callbacks.deliver import MAX_ATTEMPTS, DeliveryAttempt, backoff_seconds, deliver
from worker.callbacks.egress import Resolver
from worker.callbacks.signing import SecretError, new_secret, signature_headers
from worker.catalogue import Code
from worker.db import session_scope
from worker.policy.transitions import utcnow
from worker.settings import Settings

__all__ = ["LEASE_SECONDS", "SEND_TIMEOUT", "MAX_RESPONSE_BYTES", "DueCallback", "claim_due", "send_one",
           "rotate_secret"]

log = logging.getLogger(__name__)

#: How long a claimed row is hidden from other workers; well above one attempt's deadline (:data:`SEND_TIMEOUT`).
LEASE_SECONDS = 60
#: Overall deadline of one attempt, DNS included (Standard Webhooks: 15-30 s).
SEND_TIMEOUT = 15.0
#: Response bytes read before the rest is dropped; we only need the status line.
MAX_RESPONSE_BYTES = 65536
_ERROR_LENGTH = 500

PENDING = CallbackState.PENDING.value


@dataclass(frozen=True)
class DueCallback:
    """One leased callback: everything needed to send it without touching the database again."""

    id: str
    url: str
    body: bytes
    attempts: int
    secrets: tuple[str, ...]


def claim_due(limit: int, *, lease_seconds: int = LEASE_SECONDS) -> list[DueCallback]:
    """Lease up to ``limit`` PENDING rows whose ``next_attempt_at`` has come, with their merchants' secrets."""
    if limit < 1:
        return []
    now = utcnow()
    due = (
        select(OutboundCallback.id)
        .where(OutboundCallback.state == PENDING, OutboundCallback.next_attempt_at <= now)
        .order_by(OutboundCallback.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with session_scope() as session:
        rows = session.execute(
            update(OutboundCallback)
            .where(OutboundCallback.id.in_(due.scalar_subquery()), OutboundCallback.state == PENDING,
                   OutboundCallback.next_attempt_at <= now)
            .values(next_attempt_at=now + dt.timedelta(seconds=lease_seconds))
            .returning(OutboundCallback.id, OutboundCallback.url, OutboundCallback.body, OutboundCallback.attempts,
                       OutboundCallback.merchant_id)
            .execution_options(synchronize_session=False)
        ).all()
        secrets = _secrets_of(session, {row.merchant_id for row in rows})
    return [DueCallback(row.id, row.url, row.body.encode("utf-8"), row.attempts, secrets.get(row.merchant_id, ()))
            for row in rows]


def _secrets_of(session: Session, merchant_ids: set[int]) -> dict[int, tuple[str, ...]]:
    if not merchant_ids:
        return {}
    found = session.execute(select(Merchant.id, Merchant.webhook_secrets).where(Merchant.id.in_(merchant_ids)))
    return {mid: tuple(str(s) for s in (secrets or [])) for mid, secrets in found}


def send_one(due: DueCallback, settings: Settings, *, resolver: Resolver | None = None) -> str:
    """Make one attempt at ``due`` and record it; the outcome: delivered, retry, refused or failed (gave up).

    Network trouble is an outcome, never an exception. A merchant without a usable secret is retried
    like a failed attempt (never sent unsigned), so fixing the secret rescues the callback.
    """
    try:
        headers = signature_headers(due.secrets, due.id, int(time.time()), due.body)
    except (SecretError, ValueError) as exc:
        attempt = DeliveryAttempt("retry", None, f"cannot sign: {exc}")
    else:
        attempt = deliver(due.url, due.body, headers, allow_private=settings.allow_private_callbacks,
                          timeout=SEND_TIMEOUT, max_response_bytes=MAX_RESPONSE_BYTES, resolver=resolver,
                          allowed_ports=settings.callback_ports)
    outcome, values = _next_state(due, attempt)
    with session_scope() as session:
        recorded = session.execute(
            update(OutboundCallback)
            .where(OutboundCallback.id == due.id, OutboundCallback.state == PENDING,
                   OutboundCallback.attempts == due.attempts)
            .values(**values)
            .returning(OutboundCallback.id)
            .execution_options(synchronize_session=False)
        ).first()
    if recorded is None:
        log.warning("callback %s was recorded by another worker meanwhile; outcome %s dropped", due.id, outcome)
    return outcome


def _next_state(due: DueCallback, attempt: DeliveryAttempt) -> tuple[str, dict[str, Any]]:
    """The outcome name and the column values that record ``attempt``."""
    attempts = due.attempts + 1
    if attempt.outcome == "delivered":
        return "delivered", {"state": CallbackState.DELIVERED.value, "attempts": attempts, "last_error": None}
    if attempt.outcome == "refused":
        error = f"{Code.CALLBACK_URL_REFUSED.value}: {attempt.error}"
        return "refused", {"state": CallbackState.FAILED.value, "attempts": attempts, "last_error": _clip(error)}
    if attempts >= MAX_ATTEMPTS:
        error = f"gave up after {attempts} attempts: {attempt.error}"
        return "failed", {"state": CallbackState.FAILED.value, "attempts": attempts, "last_error": _clip(error)}
    later = utcnow() + dt.timedelta(seconds=backoff_seconds(attempts))
    return "retry", {"attempts": attempts, "next_attempt_at": later, "last_error": _clip(attempt.error)}


def _clip(text: str) -> str:
    return text[:_ERROR_LENGTH]


def rotate_secret(session: Session, merchant_id: int, keep: int = 2) -> str:
    """Append a fresh signing secret to merchant ``merchant_id`` and keep only the newest ``keep``; returns it.

    Rotation procedure (Standard Webhooks, no window in which callbacks fail to verify):

    1. ``rotate_secret(session, merchant_id)``: from the next attempt on, every callback carries one
       ``v1,`` signature per kept secret (old and new), so a receiver still holding only the old secret
       keeps verifying.
    2. Give the merchant the new secret (``hexavox merchant show ID --webhook-secret`` prints the newest one);
       they switch their receiver to it whenever convenient: it verifies as soon as it is live.
    3. The old secret stops signing when the next rotation pushes it out of the newest ``keep`` (so
       rotate only after the merchant confirmed the switch). A leaked secret is revoked at once with
       ``keep=1``: only the new secret signs, and callbacks fail verification until the merchant installs it.

    Runs in the caller's transaction and locks the merchant row (PostgreSQL) so two rotations do not race.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1: a merchant needs a secret to verify callbacks")
    merchant = session.execute(select(Merchant).where(Merchant.id == merchant_id).with_for_update()).scalar_one()
    secret = new_secret()
    merchant.webhook_secrets = _newest([*(str(s) for s in merchant.webhook_secrets or []), secret], keep)
    session.flush()
    return secret


def _newest(secrets: Sequence[str], keep: int) -> list[str]:
    return list(secrets[-keep:])
