"""The GET endpoints' reads: merchants, consents and one message with its history, for the calling key only.

These have no queue job (nothing is written), so they read in one session with the policy's own lookups
(:func:`worker.policy.merchants.load_merchant`, :func:`merchant_view`) and apply the key's rules: its merchants,
its channels, and for consents (contact data) the consent job. Another tenant's rows are simply not found.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from schema.models import Consent, Merchant, Message, MessageEvent
from worker.catalogue import Code
from worker.errors import Refusal
from worker.policy.admin import normalize_contact
from worker.policy.auth import ALL, Principal
from worker.policy.merchants import load_merchant, merchant_view
from worker.validation import check_channel

__all__ = ["CONSENT_JOB", "consent_rows", "consent_view", "merchant_rows", "message_view", "one_merchant"]

CONSENT_JOB = "hexavox.consent.upsert.v1"


def _iso(at: dt.datetime | None) -> str | None:
    """UTC with a Z; SQLite hands back naive datetimes that are already UTC."""
    if at is None:
        return None
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.isoformat().replace("+00:00", "Z")


def _public_view(session: Session, merchant: Merchant) -> dict[str, Any]:
    """The seed-003 MerchantView; the dlrUrl signing secret is given on upsert only, never on a read."""
    view = dict(merchant_view(session, merchant))
    view.pop("webhookSecret", None)
    return view


def _scoped(query: Select[Any], who: Principal) -> Select[Any]:
    query = query.where(Merchant.tenant_id == who.tenant_id)
    if ALL not in who.allowed_merchants:
        query = query.where(Merchant.external_id.in_(sorted(who.allowed_merchants)))
    return query


def merchant_rows(session: Session, who: Principal, limit: int, offset: int) -> list[dict[str, Any]]:
    """The tenant's merchants the key may act for, by merchantId."""
    query = _scoped(select(Merchant), who).order_by(Merchant.external_id).limit(limit).offset(offset)
    return [_public_view(session, merchant) for merchant in session.scalars(query)]


def one_merchant(session: Session, who: Principal, merchant_id: str) -> dict[str, Any]:
    who.require_merchant(merchant_id)
    return _public_view(session, load_merchant(session, who.tenant_id, merchant_id, must_be_active=False))


def consent_rows(session: Session, who: Principal, merchant_id: str | None, channel: str | None, limit: int,
                 offset: int) -> list[dict[str, Any]]:
    """Consents of the tenant's merchants (one merchant, one channel when asked), newest change first."""
    who.require(CONSENT_JOB)
    query = _scoped(select(Consent, Merchant.external_id).join(Merchant, Merchant.id == Consent.merchant_id), who)
    if merchant_id is not None:
        who.require_merchant(merchant_id)
        query = query.where(Consent.merchant_id == load_merchant(session, who.tenant_id, merchant_id,
                                                                 must_be_active=False).id)
    if channel is not None:
        channel = check_channel(channel)
        who.require_channel(channel)
        query = query.where(Consent.channel == channel)
    elif ALL not in who.allowed_channels:
        query = query.where(Consent.channel.in_(sorted(who.allowed_channels)))
    query = query.order_by(Consent.updated_at.desc(), Consent.id.desc()).limit(limit).offset(offset)
    return [{"merchantId": external_id, "channel": row.channel, "contact": row.contact, "status": row.status,
             "source": row.source, "updatedAt": _iso(row.updated_at)} for row, external_id in session.execute(query)]


def consent_view(session: Session, who: Principal, answer: dict[str, Any], contact: Any) -> dict[str, Any]:
    """Seed 003's ConsentView for an accepted consent upsert: the contact as stored (the job's answer masks it,
    as it is kept in the result backend; the caller sent it in the clear) and when the row last changed."""
    stored = normalize_contact(str(answer["channel"]), contact)
    merchant = load_merchant(session, who.tenant_id, str(answer["merchantId"]), must_be_active=False)
    at = session.scalar(select(Consent.updated_at).where(Consent.merchant_id == merchant.id,
                                                         Consent.channel == answer["channel"],
                                                         Consent.contact == stored))
    return {**answer, "contact": stored, "updatedAt": _iso(at)}


def message_view(session: Session, who: Principal, message_id: str) -> dict[str, Any]:
    """One message's state, freshness, charge and history; E845 for a message of another tenant or none."""
    found = session.execute(_scoped(select(Message, Merchant.external_id)
                                    .join(Merchant, Merchant.id == Message.merchant_id), who)
                            .where(Message.id == message_id)).first()
    if found is None:
        raise Refusal(Code.MESSAGE_NOT_FOUND, "no such message for this key", field="messageId")
    message, merchant_id = found
    who.require_channel(message.channel)
    events = session.scalars(select(MessageEvent).where(MessageEvent.message_id == message.id)
                             .order_by(MessageEvent.at, MessageEvent.id)).all()
    return {
        "messageId": message.id, "requestId": message.request_id, "merchantId": merchant_id,
        "channel": message.channel, "type": message.message_type, "to": message.recipient, "status": message.status,
        "freshnessState": message.freshness, "units": message.units, "errorCode": message.error_code,
        "scheduledAt": _iso(message.scheduled_at), "createdAt": _iso(message.created_at),
        "updatedAt": _iso(message.updated_at), "finalAt": _iso(message.final_at),
        "history": [{"from": e.from_state, "to": e.to_state, "at": _iso(e.at)} for e in events],
    }
