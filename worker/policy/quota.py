"""Quota: reserve units against limit + credits of the current billing period with one conditional UPDATE that
cannot overspend (periods roll over in :mod:`worker.policy.periods`).

PostgreSQL re-evaluates ``used + n <= limit + credits`` on the newest row version when two
transactions race (Read Committed), and a check constraint backs it up. Alerts are written
once per merchant, channel, period and threshold when a reservation crosses 80 % or 100 %.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from providers.base import MAX_CALL_SECONDS
from schema.models import Alert, Balance, Merchant, Message, UsagePeriod
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal
from worker.policy.periods import credits_drawn, current_period, roll_balance

__all__ = ["reserve_units", "reserve_prefix", "release_units", "release_to_period", "add_credits", "billed_minutes",
           "settle_voice_minutes", "THRESHOLDS"]

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)


def reserve_units(session: Session, merchant: Merchant, channel: str, units: int,
                  now: dt.datetime | None = None) -> dt.date:
    """Take ``units`` from the merchant's balance for the period of ``now`` or refuse with E808.

    Returns the period charged, which the message keeps so a later refund goes back to that period. The charge is
    one conditional UPDATE on a balance already in the current period. When it finds none (the period ended, or
    the units ran out) it rolls the period over if that is still to do (:func:`roll_balance`; a concurrent charge
    may have done it meanwhile) and tries once more.
    """
    now = now or dt.datetime.now(dt.UTC)
    start = current_period(merchant, now).start
    row = _charge(session, merchant.id, channel, units, start)
    if row is None:  # out of units, or the period ended: roll it (unless a concurrent charge just did) and retry
        roll_balance(session, merchant, channel, now)
        row = _charge(session, merchant.id, channel, units, start)
    if row is None:
        raise Refusal(Code.INSUFFICIENT_BALANCE, f"not enough {channel} units left", field="to")
    used, limit, period = row
    _alert_on_threshold(session, merchant, channel, used - units, used, limit, period.isoformat())
    return dt.date.fromisoformat(str(period))


def reserve_prefix(session: Session, merchant: Merchant, channel: str, units: list[int],
                   now: dt.datetime | None = None) -> tuple[int, dt.date | None]:
    """Reserve the longest leading run of ``units`` the balance covers: (how many messages it covers, the period).

    One conditional UPDATE for the whole run (a campaign chunk) through :func:`reserve_units`, which rolls the period
    over when due; re-tried with a shorter run when a concurrent send took units between reading the balance and
    reserving, so it can never overspend.
    """
    wanted = units
    for _attempt in range(5):
        count, total = _fitting(units, sum(wanted))
        if count == 0:
            return 0, None
        try:
            return count, reserve_units(session, merchant, channel, total, now)
        except Refusal:
            left = session.execute(select(Balance.unit_limit + Balance.credits - Balance.used).where(
                Balance.merchant_id == merchant.id, Balance.channel == channel)).scalar()
            wanted = [max(0, int(left or 0))]
    return 0, None


def _fitting(units: list[int], left: int) -> tuple[int, int]:
    """How many leading ``units`` fit in ``left``, and their sum."""
    count = total = 0
    for n in units:
        if total + n > left:
            break
        count, total = count + 1, total + n
    return count, total


_BALANCES = cast(Table, Balance.__table__).c
#: Built once (a statement object keeps its cache key, so executing it again skips rebuilding and re-keying it).
_CHARGE = (
    update(cast(Table, Balance.__table__))
    .where(_BALANCES.merchant_id == bindparam("b_merchant_id"), _BALANCES.channel == bindparam("b_channel"),
           _BALANCES.period_start >= bindparam("b_start"),
           _BALANCES.used + bindparam("b_units") <= _BALANCES.unit_limit + _BALANCES.credits)
    .values(used=_BALANCES.used + bindparam("b_units"))
    .returning(_BALANCES.used, _BALANCES.unit_limit, _BALANCES.period_start)
)


def _charge(session: Session, merchant_id: int, channel: str, units: int, start: dt.date) -> Any:
    """(used, limit, period) after adding ``units`` to a balance in the period from ``start``; None if it is still
    in an earlier period or cannot cover them. PostgreSQL re-checks the WHERE on the newest row version."""
    return session.execute(_CHARGE, {"b_merchant_id": merchant_id, "b_channel": channel, "b_start": start,
                                     "b_units": units}).first()


def release_units(session: Session, merchant_id: int, channel: str, units: int, *,
                  message_id: str | None = None) -> None:
    """Give reserved units back (a message that finally failed or expired costs nothing).

    They go back to the period the message was charged to: the current balance while it still holds that period,
    else that period's history row, whose credits drawn for them return to the balance (they carry over).
    """
    if units <= 0:
        return
    release_to_period(session, merchant_id, channel, units, _period_of_message(session, message_id))


def release_to_period(session: Session, merchant_id: int, channel: str, units: int, period: dt.date | None) -> None:
    """:func:`release_units` for a caller that already knows the period the units were charged to (None: the
    current balance, whichever period it holds)."""
    where = [Balance.merchant_id == merchant_id, Balance.channel == channel, Balance.used >= units]
    if period is not None:
        where.append(Balance.period_start == period)
    done = session.execute(update(Balance).where(*where).values(used=Balance.used - units)
                           .returning(Balance.used)).first()
    if done is None and period is not None:
        _release_from_history(session, merchant_id, channel, units, period)


def _period_of_message(session: Session, message_id: str | None) -> dt.date | None:
    if message_id is None:
        return None
    period: dt.date | None = session.scalar(select(Message.period_start).where(Message.id == message_id))
    return period


def _release_from_history(session: Session, merchant_id: int, channel: str, units: int, period: dt.date) -> None:
    """Take ``units`` off a closed period and hand back the credits it had drawn for them."""
    row = session.execute(
        update(UsagePeriod)
        .where(UsagePeriod.merchant_id == merchant_id, UsagePeriod.channel == channel,
               UsagePeriod.period_start == period, UsagePeriod.used >= units)
        .values(used=UsagePeriod.used - units)
        .returning(UsagePeriod.used, UsagePeriod.unit_limit, UsagePeriod.credits)
    ).first()
    if row is None:
        return
    after, limit, credits = (int(v) for v in row)
    back = credits_drawn(limit, credits, after + units) - credits_drawn(limit, credits, after)
    if back > 0:
        add_credits(session, merchant_id, channel, back)


def billed_minutes(duration_seconds: int | None) -> int | None:
    """Started minutes of a call (what providers bill), or None when the duration is unknown or unreadable (negative,
    or over a day: no call lasts that long, and a huge value would overflow the balance columns)."""
    if duration_seconds is None or not 0 <= duration_seconds <= MAX_CALL_SECONDS:
        return None
    return math.ceil(duration_seconds / 60)


def settle_voice_minutes(session: Session, merchant_id: int | None, reserved: int, minutes: int,
                         message_id: str) -> None:
    """Move a call's balance from the minutes reserved at intake (estimated from the text) to the real ones.

    Fewer minutes give the difference back (to the call's own period); more are charged. When the balance cannot
    cover the overrun, or the call's period has closed since, the call already happened, so the message keeps its
    real minutes (what the provider bills, what usage shows) and the uncharged overrun is logged: the no-overspend
    constraint on the balance must hold, and a closed period's credits have carried over already.
    Callers run this only in the transaction whose transition made the call DELIVERED, so it runs once.
    """
    if merchant_id is None or minutes == reserved:
        return
    if minutes < reserved:
        release_units(session, merchant_id, "VOICE", reserved - minutes, message_id=message_id)
        return
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        return
    try:
        _charge_overrun(session, merchant, minutes - reserved, _period_of_message(session, message_id))
    except Refusal:
        log.warning("voice message %s ran %d minute(s) over what the balance of merchant %s covers; not charged",
                    message_id, minutes - reserved, merchant_id)


def _charge_overrun(session: Session, merchant: Merchant, minutes: int, period: dt.date | None) -> None:
    """Charge extra call minutes to the call's own period while the balance still holds it (E808 otherwise)."""
    if period is None:
        reserve_units(session, merchant, "VOICE", minutes)
        return
    row = session.execute(
        update(Balance)
        .where(Balance.merchant_id == merchant.id, Balance.channel == "VOICE", Balance.period_start == period,
               Balance.used + minutes <= Balance.unit_limit + Balance.credits)
        .values(used=Balance.used + minutes)
        .returning(Balance.used, Balance.unit_limit)
    ).first()
    if row is None:
        raise Refusal(Code.INSUFFICIENT_BALANCE, "the call's period cannot cover its overrun")
    used, limit = row
    _alert_on_threshold(session, merchant, "VOICE", used - minutes, used, limit, period.isoformat())


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
