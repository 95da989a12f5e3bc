"""Merchant lookup under a tenant, activity and route checks, and the upsert admin job.

Every send job looks its merchant and route up: both go through :mod:`worker.lookup_cache`, which serves them only
while nothing changed since they were read. A merchant comes back as a session-attached :class:`Merchant` built from
the cached values without a query; its webhook signing secrets are never cached (loaded from the row when used).
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, make_transient_to_detached

from schema.models import Balance, Merchant, Route
from schema.states import Channel
from worker.callbacks.signing import new_secret
from worker.catalogue import Code
from worker.contract import MerchantFields
from worker.errors import Refusal, ValidationError
from worker.lookup_cache import MISSING, cached
from worker.policy.periods import current_period, roll_balances, set_billing_period
from worker.policy.transitions import utcnow
from worker.settings import get_settings

__all__ = ["load_merchant", "require_route", "upsert_merchant", "provider_order", "merchant_view"]

#: The message types each channel carries: a per-type provider order must name one of its channel's types.
CHANNEL_TYPES: dict[str, frozenset[str]] = {
    "SMS": frozenset({"OTP", "TXN", "MKT"}),
    "VOICE": frozenset({"OTP", "TXN", "MKT", "REMINDER"}),
    "EMAIL": frozenset({"TRANSACTIONAL", "MARKETING"}),
}
_ROUTE_CODES = {"OTP": Code.DEFAULT_ROUTE_DISABLED, "TXN": Code.TXN_ROUTE_DISABLED, "MKT": Code.MKT_ROUTE_DISABLED}


#: The merchant columns a lookup may keep: all but the dlrUrl signing secrets (loaded from the row when used).
_CACHED_COLUMNS = tuple(c.key for c in inspect(Merchant).column_attrs if c.key != "webhook_secrets")


@dataclass(frozen=True)
class _MerchantRecord:
    """A merchant row's cacheable columns as an immutable copy (lists kept as tuples, so no caller can alter them)."""

    values: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, merchant: Merchant) -> _MerchantRecord:
        return cls(tuple((name, _frozen(getattr(merchant, name))) for name in _CACHED_COLUMNS))


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def load_merchant(session: Session, tenant_id: int, external_id: str, *, must_be_active: bool = True) -> Merchant:
    """The tenant's merchant ``external_id``; another tenant's merchant is simply not found (no existence leak)."""
    loaded: list[Merchant] = []

    def load() -> _MerchantRecord:
        row = _select_merchant(session, tenant_id, external_id)
        loaded.extend([row] if row is not None else [])  # a row just read is returned as it is
        return MISSING if row is None else _MerchantRecord.of(row)

    record = cached(session, ("merchant", tenant_id, external_id), load)
    if record is MISSING:
        raise Refusal(Code.MERCHANT_NOT_FOUND, "no such merchant for this tenant", field="merchantId")
    merchant = loaded[0] if loaded else _attached(session, record)
    if must_be_active and not merchant.active:
        raise Refusal(Code.MERCHANT_INACTIVE, "merchant is not active", field="merchantId")
    return merchant


def _select_merchant(session: Session, tenant_id: int, external_id: str) -> Merchant | None:
    return session.scalars(
        select(Merchant).where(Merchant.tenant_id == tenant_id, Merchant.external_id == external_id)
    ).first()


def _attached(session: Session, record: _MerchantRecord) -> Merchant:
    """The session's own instance of the merchant: the one it already holds, else one made from ``record`` and
    added as persistent without a query (as if just loaded; unlisted columns load from the row on first use)."""
    values = {name: list(value) if isinstance(value, tuple) else value for name, value in record.values}
    held = session.identity_map.get(session.identity_key(Merchant, values["id"]))
    if isinstance(held, Merchant):
        return held
    merchant = Merchant(**values)
    make_transient_to_detached(merchant)
    session.add(merchant)
    return merchant


def _route(session: Session, merchant_id: int, channel: str, message_type: str) -> Route | None:
    return session.scalars(select(Route).where(Route.merchant_id == merchant_id, Route.channel == channel,
                                               Route.message_type == message_type)).first()


def require_route(session: Session, merchant_id: int, channel: str, message_type: str) -> None:
    """Refuse a type whose route the merchant has disabled (E623/E624/E625)."""
    def load() -> bool:
        route = _route(session, merchant_id, channel, message_type)
        return route is None or route.enabled

    if not cached(session, ("route", merchant_id, channel, message_type), load):
        raise Refusal(_ROUTE_CODES.get(message_type, Code.DEFAULT_ROUTE_DISABLED), f"{message_type} route disabled")


_ROUTE_CACHE_SECONDS = 5.0
_route_cache: dict[tuple[str, int, str, str, str], tuple[float, list[str]]] = {}


def provider_order(session: Session, merchant_id: int, channel: str, message_type: str, default: str) -> list[str]:
    """Providers to try in order for this merchant, channel and type; the default provider when none is set.

    Cached for a few seconds per process: every dispatch asks, and a route change may take that long to apply.
    """
    key = (str(session.get_bind().engine.url), merchant_id, channel, message_type, default)
    hit = _route_cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return list(hit[1])
    rows: dict[str, list[str]] = {t: list(p) for t, p in session.execute(select(Route.message_type, Route.providers)
                                  .where(Route.merchant_id == merchant_id, Route.channel == channel,
                                         Route.message_type.in_([message_type, "*"])))}
    order = next(([str(p) for p in rows[t]] for t in (message_type, "*") if rows.get(t)), [default])
    _route_cache[key] = (time.monotonic() + _ROUTE_CACHE_SECONDS, order)
    return list(order)


def upsert_merchant(session: Session, tenant_id: int, job: MerchantFields, today: dt.date) -> Merchant:
    """Create a merchant (every field left out takes its default) or update one (only the fields given change).

    Re-sending a merchant to change one limit must not reset the others to zero (E808 on the next send), nor
    reactivate it, nor move its time zone: an update is a patch, not a replacement.
    """
    _check_upsert(job)
    merchant = session.scalars(select(Merchant).where(Merchant.tenant_id == tenant_id,
                                                      Merchant.external_id == job.merchant_id)).first()
    created = merchant is None
    if merchant is None:
        merchant = Merchant(tenant_id=tenant_id, external_id=job.merchant_id, webhook_secrets=[new_secret()],
                            display_name=job.merchant_id, active=True, timezone="UTC", allowed_countries=[])
        session.add(merchant)
    _apply_fields(merchant, job)
    set_billing_period(merchant, job.billing_period, job.billing_day)
    session.flush()
    defaults = get_settings().new_merchant_limits if created else {}
    given = {Channel.SMS: job.sms_limit, Channel.VOICE: job.voice_minutes_limit, Channel.EMAIL: job.email_limit}
    first_period = current_period(merchant, utcnow()).start
    for channel, limit in given.items():
        limit = defaults.get(channel.value) if limit is None else limit
        if limit is not None:
            _set_limit(session, merchant.id, channel, limit, first_period)
    _set_routes(session, merchant.id, job)
    return merchant


def _apply_fields(merchant: Merchant, job: MerchantFields) -> None:
    """Copy the merchant's own fields that the job gives (None: left out, so kept)."""
    if job.display_name is not None:
        merchant.display_name = job.display_name
    if job.active is not None:
        merchant.active = job.active
    if job.timezone is not None:
        merchant.timezone = job.timezone
    if job.allowed_countries is not None:
        merchant.allowed_countries = [c.upper() for c in job.allowed_countries]


def _check_upsert(job: MerchantFields) -> None:
    """Refuse a time zone or provider name the service would only trip over later, at send time."""
    try:
        zoneinfo.ZoneInfo(job.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(Code.INVALID_INPUT, "unknown time zone", field="timezone") from None
    known = get_settings().providers
    orders = [(channel, "*", names, "providers") for channel, names in job.providers.items()]
    orders += [(channel, message_type, names, "providersByType")
               for channel, by_type in job.providers_by_type.items() for message_type, names in by_type.items()]
    for channel, message_type, names, field in orders:
        if message_type != "*" and message_type not in CHANNEL_TYPES[channel]:
            raise ValidationError(Code.INVALID_INPUT, f"{channel} has no type {message_type}", field=field)
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise ValidationError(Code.INVALID_INPUT, f"unknown or missing provider for {channel} {message_type}",
                                  field=field)


def _set_limit(session: Session, merchant_id: int, channel: Channel, limit: int, first_period: dt.date) -> None:
    balance = session.get(Balance, (merchant_id, channel.value))
    if balance is None:
        session.add(Balance(merchant_id=merchant_id, channel=channel.value, unit_limit=limit, credits=0, used=0,
                            period_start=first_period))
    else:
        balance.unit_limit = limit


def _set_routes(session: Session, merchant_id: int, job: MerchantFields) -> None:
    for sms_type, enabled in job.routes.items():
        _route_row(session, merchant_id, Channel.SMS.value, sms_type.upper()).enabled = bool(enabled)
    for channel, providers in job.providers.items():
        _route_row(session, merchant_id, channel.upper(), "*").providers = list(providers)
    for channel, by_type in job.providers_by_type.items():
        for message_type, names in by_type.items():
            _route_row(session, merchant_id, channel, message_type).providers = list(names)


def _route_row(session: Session, merchant_id: int, channel: str, message_type: str) -> Route:
    route = _route(session, merchant_id, channel, message_type)
    if route is None:
        route = Route(merchant_id=merchant_id, channel=channel, message_type=message_type, providers=[], enabled=True)
        session.add(route)
        session.flush()
    return route


def merchant_view(session: Session, merchant: Merchant) -> dict[str, object]:
    """The merchant exactly as seed 003's MerchantView: identity, limits, credits, and usage since periodStart.

    The dlrUrl signing secret is not part of it: answers are kept in the result backend, and the secret is
    handed out by ``hexavox merchant create|show --webhook-secret|rotate-webhook-secret`` instead.
    """
    roll_balances(session, merchant, utcnow())
    balances = {b.channel: b for b in session.scalars(select(Balance).where(Balance.merchant_id == merchant.id)
                                                      .execution_options(populate_existing=True))}

    def pick(channel: str, attr: str) -> int:
        bal = balances.get(channel)
        return int(getattr(bal, attr)) if bal else 0

    period = min((b.period_start for b in balances.values()), default=None)
    return {
        "merchantId": merchant.external_id, "displayName": merchant.display_name, "active": merchant.active,
        "limits": {"smsLimit": pick("SMS", "unit_limit"), "voiceMinutesLimit": pick("VOICE", "unit_limit"),
                   "emailLimit": pick("EMAIL", "unit_limit")},
        "credits": {"smsCredits": pick("SMS", "credits"), "voiceMinutesCredits": pick("VOICE", "credits"),
                    "emailCredits": pick("EMAIL", "credits")},
        "usage": {"smsUsed": pick("SMS", "used"), "voiceUsed": pick("VOICE", "used"),
                  "emailUsed": pick("EMAIL", "used"), "periodStart": period.isoformat() if period else None},
        "billingPeriod": merchant.billing_period, "billingDay": merchant.billing_day,
    }
