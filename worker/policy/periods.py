"""Billing periods: when a merchant's limits start again, and the rollover that keeps the old period as history.

A period starts at midnight in the merchant's time zone on its billing day (monthly by default, see
:class:`~schema.states.BillingPeriod`). The balance row holds the current period; it rolls lazily, the first time
anything charges or shows it after the boundary: the old period is copied to ``usage_periods`` (history is never
lost), ``used`` starts again from 0, and the credits the old period did not draw on carry over. Limits are spent
before credits, so a period drew ``min(credits, max(0, used - limit))`` of them.

The rollover locks the balance row (``SELECT ... FOR UPDATE``) and changes it only while it still holds the old
period, so concurrent senders roll it once; the charge itself stays one conditional UPDATE (:mod:`quota`).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from schema.models import Balance, Merchant, UsagePeriod
from schema.states import BillingPeriod, Channel
from worker.db import upsert_insert

__all__ = ["Period", "period_of", "current_period", "roll_balance", "roll_balances", "credits_drawn",
           "period_history", "set_billing_period"]

BALANCES = cast(Table, Balance.__table__)
_MONTHS = {BillingPeriod.MONTHLY: 1, BillingPeriod.QUARTERLY: 3, BillingPeriod.YEARLY: 12}


@dataclass(frozen=True)
class Period:
    """One billing period: [start, end) in local dates of the merchant's time zone."""

    start: dt.date
    end: dt.date


def _month_start(month_index: int, day: int) -> dt.date:
    return dt.date(month_index // 12, month_index % 12 + 1, day)


def period_of(kind: str, day: int, local: dt.date) -> Period:
    """The period of a ``kind`` anchored on ``day`` that contains the local date ``local``."""
    period = BillingPeriod(kind)
    if period is BillingPeriod.WEEKLY:
        weekday = (day - 1) % 7 + 1
        start = local - dt.timedelta(days=(local.isoweekday() - weekday) % 7)
        return Period(start, start + dt.timedelta(days=7))
    step = _MONTHS[period]
    index = local.year * 12 + local.month - 1
    index -= index % step
    if _month_start(index, day) > local:
        index -= step
    return Period(_month_start(index, day), _month_start(index + step, day))


def _local_date(now: dt.datetime, timezone: str) -> dt.date:
    try:
        zone = zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return now.astimezone(zone).date()


def current_period(merchant: Merchant, now: dt.datetime) -> Period:
    """The merchant's billing period at ``now`` (an aware datetime), by its own calendar and time zone."""
    kind = merchant.billing_period or BillingPeriod.MONTHLY.value
    return period_of(kind, merchant.billing_day or 1, _local_date(now, merchant.timezone))


def credits_drawn(unit_limit: int, credits: int, used: int) -> int:
    """The credits a period used: limits are spent first, credits only for what goes past the limit."""
    return min(credits, max(0, used - unit_limit))


def set_billing_period(merchant: Merchant, period: str | None, day: int | None) -> None:
    """Change the merchant's billing calendar where given; the balance rolls when the new calendar says so."""
    if period is not None:
        merchant.billing_period = BillingPeriod(period).value
    if day is not None:
        merchant.billing_day = day


def roll_balance(session: Session, merchant: Merchant, channel: str, now: dt.datetime) -> bool:
    """Close the balance's period if ``now`` is past it: history row, usage from 0, unused credits carried over.

    Returns whether it rolled. Safe under concurrency: the row lock serialises rollers, and the WHERE on the old
    period makes every roller after the first find nothing to do.
    """
    start = current_period(merchant, now).start
    c = BALANCES.c
    row = session.execute(select(c.used, c.unit_limit, c.credits, c.period_start)
                          .where(c.merchant_id == merchant.id, c.channel == channel, c.period_start < start)
                          .with_for_update()).first()
    if row is None:
        return False
    kind = merchant.billing_period or BillingPeriod.MONTHLY.value
    end = min(period_of(kind, merchant.billing_day or 1, row.period_start).end, start)
    session.execute(upsert_insert(session, UsagePeriod).values(
        merchant_id=merchant.id, channel=channel, period_start=row.period_start, period_end=max(end, row.period_start),
        unit_limit=row.unit_limit, credits=row.credits, used=row.used).on_conflict_do_nothing())
    carried = row.credits - credits_drawn(row.unit_limit, row.credits, row.used)
    session.execute(update(BALANCES).where(c.merchant_id == merchant.id, c.channel == channel,
                                           c.period_start == row.period_start)
                    .values(used=0, credits=carried, period_start=start))
    return True


def roll_balances(session: Session, merchant: Merchant, now: dt.datetime) -> None:
    """Roll every channel of the merchant, so what is shown is the current period's usage."""
    for channel in Channel:
        roll_balance(session, merchant, channel.value, now)


def period_history(session: Session, merchant_id: int, date_from: dt.date, date_to: dt.date) -> list[dict[str, Any]]:
    """Closed and current periods overlapping [date_from, date_to], newest first, with each channel's figures."""
    periods: dict[dt.date, dict[str, Any]] = {}
    closed = session.scalars(select(UsagePeriod).where(
        UsagePeriod.merchant_id == merchant_id, UsagePeriod.period_start <= date_to,
        UsagePeriod.period_end > date_from)).all()
    for row in closed:
        entry = periods.setdefault(row.period_start, {"periodStart": row.period_start.isoformat(),
                                                      "periodEnd": row.period_end.isoformat(), "current": False})
        entry[row.channel] = _figures(row.unit_limit, row.credits, row.used)
    for bal in session.scalars(select(Balance).where(Balance.merchant_id == merchant_id,
                                                     Balance.period_start <= date_to)).all():
        entry = periods.setdefault(bal.period_start, {"periodStart": bal.period_start.isoformat(),
                                                      "periodEnd": None, "current": True})
        entry[bal.channel] = _figures(bal.unit_limit, bal.credits, bal.used)
    return [periods[start] for start in sorted(periods, reverse=True)]


def _figures(unit_limit: int, credits: int, used: int) -> dict[str, int]:
    return {"limit": int(unit_limit), "credits": int(credits), "used": int(used),
            "creditsDrawn": credits_drawn(int(unit_limit), int(credits), int(used))}
