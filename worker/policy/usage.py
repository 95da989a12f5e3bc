"""Usage report (docs/contract.md 5, seed 003): billable counts, provider cost, markup, final charges for a date range.

What is billed: a message is charged for its units (SMS segments, voice minutes, emails) unless it ended
REFUSED, FAILED or EXPIRED. DELIVERED is billed for sure; QUEUED, SCHEDULED, DISPATCHING, SENT and AMBIGUOUS
may still be billed, so they are counted too and make the report PROVISIONAL until they settle.

What it costs: each message records its cost when it is accepted (``messages.cost_micros``, see
:mod:`worker.policy.pricing`): the provider's own price when the driver's answer stated one, else its units at the
configured price of its channel (HEXAVOX_UNIT_PRICES); messages from before costs were recorded are priced from the
table here. ``providerCost`` (also ``awsCost``, seed 003's name) is the sum over billable messages; ``markup`` (also
``hqMarkup``) is HEXAVOX_MARKUP_PERCENT of it; ``finalCharges`` = providerCost + markup: what the merchant is
charged for the range, safe to invoice once ``freshnessState`` is FINAL.

Money is computed in integer micro-dollars and only rounded once, at the end, to decimal strings with two decimals
(``"12.34"``, USD, half-up): ``finalCharges`` is the exact total with markup rounded, ``providerCost`` the rounded
cost, and ``markup`` their difference, so the three always add up. Per-channel amounts are rounded on their own and
may differ from the totals by a cent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from schema.models import Merchant, Message, Tenant
from schema.states import Channel, Freshness, MessageState
from worker.catalogue import Code
from worker.contract import UsageReportJob
from worker.errors import ValidationError
from worker.policy.auth import Principal
from worker.policy.merchants import load_merchant
from worker.policy.periods import period_history, roll_balances
from worker.policy.transitions import utcnow
from worker.settings import get_settings

__all__ = ["usage_report", "run_usage_job", "resolve_tenant", "BILLABLE_STATES", "money"]

#: States whose units are (or may still be) billed; every other state costs nothing.
BILLABLE_STATES = frozenset({MessageState.DELIVERED, MessageState.SENT, MessageState.AMBIGUOUS,
                             MessageState.DISPATCHING, MessageState.QUEUED, MessageState.SCHEDULED})
_NOT_SENT_YET = frozenset({MessageState.QUEUED, MessageState.SCHEDULED, MessageState.DISPATCHING})
_MICROS_PER_CENT = 10_000
_TOTAL_KEYS = {Channel.SMS: "totalSmsCount", Channel.VOICE: "totalVoiceCount", Channel.EMAIL: "totalEmailCount"}


@dataclass
class _ChannelUsage:
    """What one channel adds up to; ``by_status`` keeps every state so refusals are visible but free."""

    count: int = 0
    units: int = 0
    cost_micros: int = 0  #: recorded costs of billable messages
    unpriced_units: int = 0  #: units of billable messages with no recorded cost (older than cost recording)
    by_status: dict[str, int] = field(default_factory=dict)

    def cost(self, price: int) -> int:
        return self.cost_micros + self.unpriced_units * price


@dataclass
class _Pending:
    """Messages in range that are not FINAL yet, by why they are waiting."""

    ambiguous: int = 0
    awaiting_report: int = 0
    not_sent: int = 0

    @property
    def total(self) -> int:
        return self.ambiguous + self.awaiting_report + self.not_sent


def money(micros: int) -> str:
    """Micro-dollars as a USD decimal string with two decimals, rounded half-up."""
    return str((Decimal(micros) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _cents(micros: int | Decimal) -> int:
    return int((Decimal(micros) / _MICROS_PER_CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _amounts(cost_micros: int, markup_percent: int) -> dict[str, str]:
    """Cost, markup and final charges that add up to the cent: only the final total and the cost are rounded."""
    final_cents = _cents(Decimal(cost_micros * (100 + markup_percent)) / 100)
    cost_cents = _cents(cost_micros)
    return {"providerCost": money(cost_cents * _MICROS_PER_CENT),
            "markup": money((final_cents - cost_cents) * _MICROS_PER_CENT),
            "finalCharges": money(final_cents * _MICROS_PER_CENT)}


def _day_bounds(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Whole UTC days: [from 00:00, the day after ``to`` 00:00)."""
    if date_from > date_to:
        raise ValidationError(Code.INVALID_INPUT, "from must not be after to", field="from")
    start = dt.datetime.combine(date_from, dt.time(), tzinfo=dt.UTC)
    return start, dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def _grouped_rows(session: Session, tenant_id: int, merchant_pk: int | None, start: dt.datetime,
                  end: dt.datetime) -> list[Any]:
    """One row per (channel, status, freshness) with its message count and units: the database does the sums."""
    unpriced = case((and_(Message.cost_micros == 0, Message.provider_priced.is_(False)), Message.units), else_=0)
    query = (select(Message.channel, Message.status, Message.freshness, func.count().label("n"),
                    func.coalesce(func.sum(Message.units), 0).label("units"),
                    func.coalesce(func.sum(Message.cost_micros), 0).label("cost"),
                    func.coalesce(func.sum(unpriced), 0).label("unpriced"))
             .join(Merchant, Merchant.id == Message.merchant_id)
             .where(Merchant.tenant_id == tenant_id, Message.created_at >= start, Message.created_at < end)
             .group_by(Message.channel, Message.status, Message.freshness))
    if merchant_pk is not None:
        query = query.where(Message.merchant_id == merchant_pk)
    return list(session.execute(query).all())


def _fold(rows: list[Any]) -> tuple[dict[Channel, _ChannelUsage], _Pending]:
    channels = {channel: _ChannelUsage() for channel in Channel}
    pending = _Pending()
    for row in rows:
        usage, status, n = channels[Channel(row.channel)], MessageState(row.status), int(row.n)
        usage.by_status[status.value] = usage.by_status.get(status.value, 0) + n
        if status in BILLABLE_STATES:
            usage.count += n
            usage.units += int(row.units)
            usage.cost_micros += int(row.cost)
            usage.unpriced_units += int(row.unpriced)
        if row.freshness != Freshness.FINAL.value:
            if status == MessageState.AMBIGUOUS:
                pending.ambiguous += n
            elif status in _NOT_SENT_YET:
                pending.not_sent += n
            else:
                pending.awaiting_report += n
    return channels, pending


def _freshness(pending: _Pending) -> dict[str, str | None]:
    """PROVISIONAL with the reason while anything in range may still change; FINAL is safe to bill."""
    if pending.total == 0:
        return {"freshnessState": Freshness.FINAL.value, "freshnessReason": None}
    plural = pending.total != 1
    reason = (f"{pending.total} message{'s' if plural else ''} in range {'are' if plural else 'is'} not FINAL yet "
              f"({pending.ambiguous} AMBIGUOUS, {pending.awaiting_report} awaiting delivery report")
    reason += f", {pending.not_sent} not sent yet)" if pending.not_sent else ")"
    return {"freshnessState": Freshness.PROVISIONAL.value, "freshnessReason": reason}


def _channel_view(usage: _ChannelUsage, price: int, markup_percent: int) -> dict[str, Any]:
    return {"count": usage.count, "units": usage.units, "unitPriceMicros": price, "byStatus": usage.by_status,
            **_amounts(usage.cost(price), markup_percent)}


def usage_report(session: Session, tenant_id: int, merchant_external_id: str | None, date_from: dt.date,
                 date_to: dt.date, *, prices: Mapping[str, int], markup_percent: int) -> dict[str, Any]:
    """The seed-003 usage report of the tenant (or one of its merchants) for whole UTC days [from, to]."""
    start, end = _day_bounds(date_from, date_to)
    merchant_pk, periods = None, []
    if merchant_external_id is not None:
        merchant = load_merchant(session, tenant_id, merchant_external_id, must_be_active=False)
        merchant_pk = merchant.id
        roll_balances(session, merchant, utcnow())
        periods = period_history(session, merchant.id, date_from, date_to)
    channels, pending = _fold(_grouped_rows(session, tenant_id, merchant_pk, start, end))
    cost_micros = sum(usage.cost(prices[channel.value]) for channel, usage in channels.items())
    totals = _amounts(cost_micros, markup_percent)
    return {
        "from": date_from.isoformat(), "to": date_to.isoformat(), "merchantId": merchant_external_id,
        **{_TOTAL_KEYS[channel]: usage.count for channel, usage in channels.items()},
        "totalVoiceMinutes": channels[Channel.VOICE].units,
        **totals, "awsCost": totals["providerCost"], "hqMarkup": totals["markup"],
        "markupPercent": markup_percent, "currency": "USD",
        "channels": {channel.value: _channel_view(usage, prices[channel.value], markup_percent)
                     for channel, usage in channels.items()},
        **_freshness(pending),
        #: One merchant's billing periods overlapping the range (limits, credits, used): what the limits were
        #: measured against. Empty for a tenant-wide report.
        "periods": periods,
    }


def run_usage_job(session: Session, who: Principal, job: UsageReportJob, _today: dt.date) -> dict[str, Any]:
    """hexavox.report.usage.v1: the report for the authenticated tenant, priced with the configured prices."""
    settings = get_settings()
    return usage_report(session, who.tenant_id, job.merchant_id, job.date_from, job.date_to,
                        prices=settings.unit_prices, markup_percent=settings.markup_percent)


def resolve_tenant(session: Session, name: str | None) -> int:
    """The tenant id for operator commands: by name, or the only tenant when there is exactly one."""
    if name is not None:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == name))
        if tenant_id is None:
            raise LookupError(f"no tenant named {name!r}")
        return int(tenant_id)
    ids = session.scalars(select(Tenant.id).limit(2)).all()
    if len(ids) != 1:
        raise LookupError("there is not exactly one tenant: name it with --tenant")
    return int(ids[0])
