"""Alerts: the tenant's list (usage thresholds, provider circuits) and the reconcile-backlog check.

Alerts are written where the event happens (quota, circuit breaker, this module) with a ``dedupe_key``
that is unique in the database, so a retried or concurrent writer adds nothing: one alert per event.
Alerts without a tenant are system-wide; tenants see the provider ones (their sends depend on them),
while the reconcile backlog, which counts every tenant's messages, is for operators only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from schema.models import Alert, Merchant, Message
from schema.states import MessageState
from worker.contract import AlertsListJob
from worker.db import upsert_insert
from worker.policy.auth import Principal
from worker.policy.merchants import load_merchant
from worker.policy.transitions import utcnow

__all__ = ["list_alerts", "check_reconcile_backlog", "run_alerts_job", "RECONCILE_BACKLOG",
           "TENANT_SYSTEM_KINDS", "ALL_SYSTEM_KINDS"]

RECONCILE_BACKLOG = "RECONCILE_BACKLOG"
#: System-wide alert kinds a tenant is shown next to its own.
TENANT_SYSTEM_KINDS: frozenset[str] = frozenset({"PROVIDER_CIRCUIT_OPEN"})
#: Every system-wide kind, for operator commands.
ALL_SYSTEM_KINDS: frozenset[str] = TENANT_SYSTEM_KINDS | {RECONCILE_BACKLOG}
MAX_LIMIT = 1000


def _iso(at: dt.datetime) -> str:
    """UTC with a Z; SQLite hands back naive datetimes that are already UTC."""
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.isoformat().replace("+00:00", "Z")


def list_alerts(session: Session, tenant_id: int, merchant_external_id: str | None = None, limit: int = 100, *,
                system_kinds: Collection[str] = TENANT_SYSTEM_KINDS) -> list[dict[str, Any]]:
    """The tenant's alerts, newest first; with a merchant only that merchant's (another tenant's: E803)."""
    query = select(Alert, Merchant.external_id).outerjoin(Merchant, Merchant.id == Alert.merchant_id)
    if merchant_external_id is not None:
        merchant = load_merchant(session, tenant_id, merchant_external_id, must_be_active=False)
        query = query.where(Alert.merchant_id == merchant.id)
    else:
        system = and_(Alert.tenant_id.is_(None), Alert.kind.in_(list(system_kinds)))
        query = query.where(or_(Alert.tenant_id == tenant_id, system))
    query = query.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
    return [{"id": alert.id, "kind": alert.kind, "merchantId": external_id, "detail": alert.detail,
             "createdAt": _iso(alert.created_at)} for alert, external_id in session.execute(query).all()]


def check_reconcile_backlog(session: Session, *, max_age_seconds: int, now: dt.datetime | None = None) -> int:
    """Count AMBIGUOUS messages older than ``max_age_seconds``; when there are any, alert once per hour.

    Age is taken from when the message became due (its schedule, else its creation): reconcile touches
    ``updated_at`` on every attempt, which would hide a message that has been stuck for days, and a send
    scheduled for next week is not late the moment it goes out.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=max_age_seconds)
    due = func.coalesce(Message.scheduled_at, Message.created_at)
    count, oldest = session.execute(
        select(func.count(), func.min(due)).where(Message.status == MessageState.AMBIGUOUS.value, due <= cutoff)
    ).one()
    if count:
        detail = {"count": int(count), "oldestCreatedAt": _iso(oldest), "maxAgeSeconds": max_age_seconds}
        session.execute(upsert_insert(session, Alert).values(
            kind=RECONCILE_BACKLOG, dedupe_key=f"reconcile_backlog:{now.astimezone(dt.UTC):%Y%m%dT%H}",
            detail=detail).on_conflict_do_nothing())
    return int(count)


def run_alerts_job(session: Session, who: Principal, job: AlertsListJob, _today: dt.date) -> dict[str, Any]:
    """hexavox.alerts.list.v1: the authenticated tenant's alerts."""
    return {"alerts": list_alerts(session, who.tenant_id, job.merchant_id, job.limit)}
