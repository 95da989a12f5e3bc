"""Quota: reserve units against limit + credits with one conditional UPDATE that cannot overspend.

PostgreSQL re-evaluates ``used + n <= limit + credits`` on the newest row version when two
transactions race (Read Committed), and a check constraint backs it up. Alerts are written
once per merchant, channel, period and threshold when a reservation crosses 80 % or 100 %.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from schema.models import Alert, Balance, Merchant
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal

__all__ = ["reserve_units", "release_units", "add_credits", "THRESHOLDS"]

THRESHOLDS = (80, 100)


def reserve_units(session: Session, merchant: Merchant, channel: str, units: int) -> None:
    """Take ``units`` from the merchant's balance or refuse with E808."""
    row = session.execute(
        update(Balance)
        .where(Balance.merchant_id == merchant.id, Balance.channel == channel,
               Balance.used + units <= Balance.unit_limit + Balance.credits)
        .values(used=Balance.used + units)
        .returning(Balance.used, Balance.unit_limit, Balance.period_start)
    ).first()
    if row is None:
        raise Refusal(Code.INSUFFICIENT_BALANCE, f"not enough {channel} units left", field="to")
    used, limit, period = row
    _alert_on_threshold(session, merchant, channel, used - units, used, limit, period.isoformat())


def release_units(session: Session, merchant_id: int, channel: str, units: int) -> None:
    """Give reserved units back (a message that finally failed or expired costs nothing)."""
    if units > 0:
        session.execute(update(Balance).where(Balance.merchant_id == merchant_id, Balance.channel == channel,
                                              Balance.used >= units).values(used=Balance.used - units))


def add_credits(session: Session, merchant_id: int, channel: str, units: int) -> int:
    """Add purchased units; returns the new credit balance."""
    row = session.execute(update(Balance).where(Balance.merchant_id == merchant_id, Balance.channel == channel)
                          .values(credits=Balance.credits + units).returning(Balance.credits)).first()
    if row is None:
        raise Refusal(Code.MERCHANT_NOT_FOUND, "merchant has no balance for this channel")
    return int(row[0])


def _alert_on_threshold(session: Session, merchant: Merchant, channel: str, before: int, after: int, limit: int,
                        period: str) -> None:
    if limit <= 0:
        return
    for pct in THRESHOLDS:
        mark = limit * pct / 100
        if before < mark <= after:
            _insert_alert(session, merchant, f"USAGE_{pct}", f"usage:{merchant.id}:{channel}:{period}:{pct}",
                          {"channel": channel, "used": after, "limit": limit, "percent": pct, "periodStart": period})


def _insert_alert(session: Session, merchant: Merchant, kind: str, key: str, detail: dict[str, object]) -> None:
    row = dict(tenant_id=merchant.tenant_id, merchant_id=merchant.id, kind=kind, dedupe_key=key, detail=detail)
    session.execute(upsert_insert(session, Alert).values(**row).on_conflict_do_nothing())
