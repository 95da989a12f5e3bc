"""Buying units: the price a billing upgrade must carry, and the payment confirmation that credits it.

A tenant key may *request* units (``hexavox.billing.upgrade.v1``) but never confirm its own payment: a
confirmation comes only from the payment side, through the signed payment webhook of ``hexavox web``
(worker/payments.py) or the operator's ``hexavox billing confirm``. Both call :func:`confirm_payment`, which
credits the units once, and only when what was paid equals what the upgrade costs.

Prices are per unit in micro-dollars (``HEXAVOX_CREDIT_PRICES``), so an upgrade's price is
``ceil(units x price / 10,000)`` cents, in USD. An upgrade whose ``amountCents`` is not that price is refused
(E825) before anything is written: ``amountCents=0`` for 1,000,000 units cannot even be requested.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import Balance, BillingUpgrade, Merchant
from schema.states import PaymentStatus
from worker.catalogue import Code
from worker.errors import Refusal
from worker.policy.quota import add_credits

__all__ = ["CURRENCY", "check_price", "confirm_payment", "price_cents", "upgrade_view"]

#: The currency of the price table.
CURRENCY = "USD"
_MICRO_PER_CENT = 10_000


def price_cents(channel: str, units: int, prices: Mapping[str, int]) -> int:
    """What ``units`` of ``channel`` cost, in cents, rounded up (a fraction of a cent is never given away)."""
    return -(-units * prices[channel] // _MICRO_PER_CENT)


def check_price(channel: str, units: int, amount_cents: int, currency: str, prices: Mapping[str, int]) -> None:
    """Refuse (E825) an upgrade whose amount or currency is not the price of its units."""
    expected = price_cents(channel, units, prices)
    if currency.upper() != CURRENCY or amount_cents != expected:
        raise Refusal(Code.BILLING_AMOUNT_MISMATCH,
                      f"{units} {channel} units cost {expected} cents {CURRENCY}", field="amountCents")


def upgrade_view(row: BillingUpgrade, credits: int) -> dict[str, Any]:
    """An upgrade as its requester and the payment side see it."""
    return {"channel": row.channel, "unitsRequested": row.units, "amountCents": row.amount_cents,
            "currency": row.currency, "paymentId": row.payment_id, "paymentStatus": row.payment_status,
            "fulfilled": row.fulfilled, "referenceId": row.reference_id, "remainingCredits": credits}


def credits_of(session: Session, merchant_id: int, channel: str) -> int:
    balance = session.get(Balance, (merchant_id, channel))
    return int(balance.credits) if balance else 0


def confirm_payment(session: Session, payment_id: str, *, succeeded: bool, amount_cents: int | None,
                    currency: str = CURRENCY) -> dict[str, Any]:
    """Settle the upgrade paid under ``payment_id``: credit its units once on success, mark it FAILED otherwise.

    The row lock serialises confirmations of one payment, and only a PENDING upgrade changes, so a webhook
    delivered twice (or a webhook and the operator) credit once. A success whose amount or currency differs from
    the upgrade's is refused (E825) and changes nothing.
    """
    row = session.scalars(select(BillingUpgrade).where(BillingUpgrade.payment_id == payment_id)
                          .with_for_update()).first()
    if row is None:
        raise Refusal(Code.PAYMENT_NOT_FOUND, "no billing upgrade with this paymentId", field="paymentId")
    if row.payment_status == PaymentStatus.PENDING:
        if succeeded and (amount_cents != row.amount_cents or currency.upper() != row.currency):
            raise Refusal(Code.BILLING_AMOUNT_MISMATCH,
                          f"paid {amount_cents} {currency.upper()}, the upgrade costs {row.amount_cents} "
                          f"{row.currency}", field="amountCents")
        row.payment_status = (PaymentStatus.CONFIRMED if succeeded else PaymentStatus.FAILED).value
        if succeeded:
            add_credits(session, row.merchant_id, row.channel, row.units)
            row.fulfilled = True
        session.flush()
    merchant = session.get(Merchant, row.merchant_id)
    return {"merchantId": merchant.external_id if merchant else None,
            **upgrade_view(row, credits_of(session, row.merchant_id, row.channel))}
