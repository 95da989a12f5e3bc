"""Quota: reserve units against limit + credits with one conditional UPDATE that cannot overspend.

PostgreSQL re-evaluates ``used + n <= limit + credits`` on the newest row version when two
transactions race (Read Committed), and a check constraint backs it up. Alerts are written
once per merchant, channel, period and threshold when a reservation crosses 80 % or 100 %.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schema.models import Alert, Balance, Merchant
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal

__all__ = ["reserve_units", "reserve_prefix", "release_units", "add_credits", "billed_minutes", "settle_voice_minutes",
           "THRESHOLDS"]

log = logging.getLogger(__name__)

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


def reserve_prefix(session: Session, merchant: Merchant, channel: str, units: list[int]) -> int:
    """Reserve the longest leading run of ``units`` the balance covers; returns how many messages it covers.

    One conditional UPDATE for the whole run (a campaign chunk), re-tried with a shorter run when a concurrent
    send took units between reading the balance and reserving: it can never overspend.
    """
    for _attempt in range(5):
        left = session.execute(select(Balance.unit_limit + Balance.credits - Balance.used).where(
            Balance.merchant_id == merchant.id, Balance.channel == channel)).scalar()
        count, total = _fitting(units, int(left or 0))
        if count == 0:
            return 0
        try:
            reserve_units(session, merchant, channel, total)
            return count
        except Refusal:
            continue
    return 0


def _fitting(units: list[int], left: int) -> tuple[int, int]:
    count = total = 0
    for n in units:
        if total + n > left:
            break
        count, total = count + 1, total + n
    return count, total


def release_units(session: Session, merchant_id: int, channel: str, units: int) -> None:
    """Give reserved units back (a message that finally failed or expired costs nothing)."""
    if units > 0:
        session.execute(update(Balance).where(Balance.merchant_id == merchant_id, Balance.channel == channel,
                                              Balance.used >= units).values(used=Balance.used - units))


def billed_minutes(duration_seconds: int | None) -> int | None:
    """Started minutes of a call (what providers bill), or None when the duration is unknown or unreadable."""
    if duration_seconds is None or duration_seconds < 0:
        return None
    return math.ceil(duration_seconds / 60)


def settle_voice_minutes(session: Session, merchant_id: int | None, reserved: int, minutes: int,
                         message_id: str) -> None:
    """Move a call's balance from the minutes reserved at intake (estimated from the text) to the real ones.

    Fewer minutes give the difference back; more are charged. When the balance cannot cover the overrun
    the call already happened, so the message keeps its real minutes (what the provider bills, what usage
    shows) and the uncharged overrun is logged: the no-overspend constraint on the balance must hold.
    Callers run this only in the transaction whose transition made the call DELIVERED, so it runs once.
    """
    if merchant_id is None or minutes == reserved:
        return
    if minutes < reserved:
        release_units(session, merchant_id, "VOICE", reserved - minutes)
        return
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        return
    try:
        reserve_units(session, merchant, "VOICE", minutes - reserved)
    except Refusal:
        log.warning("voice message %s ran %d minute(s) over what the balance of merchant %s covers; not charged",
                    message_id, minutes - reserved, merchant_id)


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
