"""10DLC registration: a merchant's brand, its campaigns, its messaging numbers and their assignment to campaigns.

Jobs only write what the merchant asked for, PENDING; the registrar decides later. Decisions arrive two ways and
are applied by the same function (:func:`apply_update`): the registrar's webhook, and the beat-driven poll
(:func:`sync_registrations`), which also makes the submissions. The poll is reconcile-first, as for messages: it asks
the registrar about our id before submitting, so a submission whose answer was lost is never made twice. A send
reads these rows only (worker/policy/tendlc_send.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from providers.registrars.base import Decision, Kind, Registrar, Submission, Update
from schema.messaging_states import (
    USE_CASE_COVERS,
    AssignmentStatus,
    BrandStatus,
    RegistrationStatus,
    UseCase,
)
from schema.models import Merchant, MessagingBrand, MessagingCampaign, MessagingNumber
from worker.catalogue import Code
from worker.contract import (
    MessagingAssignmentJob,
    MessagingBrandJob,
    MessagingCampaignJob,
    MessagingNumberJob,
    MessagingStatusJob,
)
from worker.errors import Refusal, ValidationError
from worker.policy.auth import Principal
from worker.policy.delivery_reports import record_event
from worker.policy.merchants import load_merchant
from worker.policy.tendlc_send import long_code
from worker.policy.transitions import utcnow
from worker.settings import get_settings

__all__ = ["SyncCounts", "apply_update", "run_tendlc_job", "status_view", "sync_registrations"]

log = logging.getLogger(__name__)
#: The source name registrar decisions are recorded under in ``inbound_events`` (beside providers' report ids).
REGISTRAR_EVENTS = "registrar"
Row = MessagingBrand | MessagingCampaign | MessagingNumber
_MODELS: dict[Kind, type[Row]] = {Kind.BRAND: MessagingBrand, Kind.CAMPAIGN: MessagingCampaign,
                                  Kind.ASSIGNMENT: MessagingNumber}
_STATUSES: dict[Kind, frozenset[str]] = {Kind.BRAND: frozenset(BrandStatus), Kind.CAMPAIGN: frozenset(
    RegistrationStatus), Kind.ASSIGNMENT: frozenset(AssignmentStatus)}


def _iso(at: dt.datetime | None) -> str | None:
    if at is None:
        return None
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.isoformat().replace("+00:00", "Z")


def _masked(tax_id: str) -> str:
    """Answers are stored and shown by Flower: the tax id only by its last 4 characters."""
    return "*" * max(0, len(tax_id) - 4) + tax_id[-4:]


# Views (seed 003's V1MerchantMessaging* answers)

def brand_view(merchant_id: str, brand: MessagingBrand) -> dict[str, Any]:
    return {"merchantId": merchant_id, "brandId": brand.brand_id, "legalName": brand.legal_name,
            "taxId": _masked(brand.tax_id), "country": brand.country, "vertical": brand.vertical,
            "status": brand.status, "reasons": list(brand.reasons), "registrar": brand.registrar,
            "updatedAt": _iso(brand.updated_at)}


def campaign_view(merchant_id: str, campaign: MessagingCampaign, brand_id: str) -> dict[str, Any]:
    return {"merchantId": merchant_id, "campaignId": campaign.campaign_id, "brandId": brand_id,
            "useCase": campaign.use_case, "covers": sorted(USE_CASE_COVERS[UseCase(campaign.use_case)]),
            "status": campaign.status, "reasons": list(campaign.reasons), "updatedAt": _iso(campaign.updated_at)}


def number_view(merchant_id: str, number: MessagingNumber, campaign_id: str | None) -> dict[str, Any]:
    return {"merchantId": merchant_id, "number": number.number, "source": number.source, "campaignId": campaign_id,
            "assignment": number.assignment, "reasons": list(number.reasons), "updatedAt": _iso(number.updated_at)}


def status_view(session: Session, merchant: Merchant) -> dict[str, Any]:
    """The compliance view: the brand, every campaign and number, and which numbers may send US SMS now."""
    brand = session.scalars(select(MessagingBrand).where(MessagingBrand.merchant_id == merchant.id)).first()
    campaigns = session.scalars(select(MessagingCampaign).where(MessagingCampaign.merchant_id == merchant.id)
                                .order_by(MessagingCampaign.id)).all()
    by_pk = {c.id: c for c in campaigns}
    numbers = session.scalars(select(MessagingNumber).where(MessagingNumber.merchant_id == merchant.id)
                              .order_by(MessagingNumber.number)).all()
    brand_id = brand.brand_id if brand else ""
    number_views = []
    for n in numbers:
        campaign = by_pk.get(n.campaign_pk) if n.campaign_pk else None
        view = number_view(merchant.external_id, n, campaign.campaign_id if campaign else None)
        view["canSend"] = sorted(USE_CASE_COVERS[UseCase(campaign.use_case)]) if (
            campaign is not None and campaign.status == RegistrationStatus.ACTIVE.value
            and n.assignment == AssignmentStatus.ASSIGNED.value) else []
        number_views.append(view)
    return {"merchantId": merchant.external_id, "brand": brand_view(merchant.external_id, brand) if brand else None,
            "campaigns": [campaign_view(merchant.external_id, c, brand_id) for c in campaigns],
            "numbers": number_views}


# Jobs

def _brand_of(session: Session, merchant: Merchant, *, lock: bool = False) -> MessagingBrand | None:
    query = select(MessagingBrand).where(MessagingBrand.merchant_id == merchant.id)
    return session.scalars(query.with_for_update() if lock else query).first()


def _register_brand(session: Session, merchant: Merchant, job: MessagingBrandJob) -> dict[str, Any]:
    """A new brand, or a refused one (UNVERIFIED/FAILED) registered again with corrected fields."""
    brand = _brand_of(session, merchant, lock=True)
    if brand is not None and brand.status not in (BrandStatus.UNVERIFIED, BrandStatus.FAILED):
        raise Refusal(Code.MESSAGING_STATE_CONFLICT, f"the brand is {brand.status}; register again only after "
                      "UNVERIFIED or FAILED", field="merchantId")
    if brand is None:
        brand = MessagingBrand(merchant_id=merchant.id, brand_id=str(uuid.uuid4()))
        session.add(brand)
    brand.legal_name, brand.tax_id, brand.vertical = job.legal_name, job.tax_id, job.vertical
    brand.country = job.address.country
    brand.address = job.address.model_dump(by_alias=True)
    brand.contact = job.contact.model_dump(by_alias=True)
    brand.registrar = get_settings().registrar
    _resubmit(brand, BrandStatus.PENDING.value)
    session.flush()
    return brand_view(merchant.external_id, brand)


def _resubmit(row: Row, status: str) -> None:
    if isinstance(row, MessagingNumber):
        row.assignment = status
    else:
        row.status = status
    row.reasons, row.registrar_ref, row.submitted_at = [], None, None


def _create_campaign(session: Session, merchant: Merchant, job: MessagingCampaignJob) -> dict[str, Any]:
    brand = _brand_of(session, merchant)
    if brand is None or brand.status != BrandStatus.VERIFIED.value:
        raise Refusal(Code.MESSAGING_STATE_CONFLICT, "a campaign needs a VERIFIED brand (now: "
                      f"{brand.status if brand else 'none'})", field="merchantId")
    campaign = MessagingCampaign(
        merchant_id=merchant.id, brand_pk=brand.id, campaign_id=str(uuid.uuid4()), use_case=job.use_case,
        description=job.description, sample_messages=list(job.sample_messages), opt_in=job.opt_in,
        opt_out=job.opt_out, help_text=job.help, status=RegistrationStatus.PENDING.value, reasons=[])
    session.add(campaign)
    session.flush()
    return campaign_view(merchant.external_id, campaign, brand.brand_id)


def _add_number(session: Session, merchant: Merchant, job: MessagingNumberJob) -> dict[str, Any]:
    number = long_code(job.number)
    if number is None:
        raise ValidationError(Code.INVALID_MESSAGING_NUMBER, "not a US/CA long code", field="number")
    row = session.scalars(select(MessagingNumber).where(MessagingNumber.number == number)).first()
    if row is not None and row.merchant_id != merchant.id:
        raise Refusal(Code.MESSAGING_NUMBER_TAKEN, "another merchant sends from this number", field="number")
    if row is None:
        row = MessagingNumber(merchant_id=merchant.id, number=number, source=job.source, reasons=[])
        session.add(row)
        session.flush()
    return number_view(merchant.external_id, row, _campaign_id(session, row.campaign_pk))


def _campaign_id(session: Session, campaign_pk: int | None) -> str | None:
    if campaign_pk is None:
        return None
    return session.scalar(select(MessagingCampaign.campaign_id).where(MessagingCampaign.id == campaign_pk))


def _assign_number(session: Session, merchant: Merchant, job: MessagingAssignmentJob) -> dict[str, Any]:
    number = long_code(job.number)
    row = session.scalars(select(MessagingNumber).where(MessagingNumber.merchant_id == merchant.id,
                                                        MessagingNumber.number == number).with_for_update()).first()
    if row is None:
        raise Refusal(Code.MESSAGING_NOT_FOUND, "not a messaging number of this merchant", field="number")
    campaign = session.scalars(select(MessagingCampaign).where(
        MessagingCampaign.merchant_id == merchant.id, MessagingCampaign.campaign_id == job.campaign_id)).first()
    if campaign is None:
        raise Refusal(Code.MESSAGING_NOT_FOUND, "no such campaign for this merchant", field="campaignId")
    if campaign.status != RegistrationStatus.ACTIVE.value:
        raise Refusal(Code.MESSAGING_STATE_CONFLICT, f"the campaign is {campaign.status}; numbers are assigned to "
                      "ACTIVE campaigns only", field="campaignId")
    if row.campaign_pk != campaign.id or row.assignment == AssignmentStatus.FAILED.value:
        row.campaign_pk = campaign.id
        _resubmit(row, AssignmentStatus.PENDING.value)
        session.flush()
    return number_view(merchant.external_id, row, campaign.campaign_id)


_JOBS: dict[type[Any], Callable[[Session, Merchant, Any], dict[str, Any]]] = {
    MessagingBrandJob: _register_brand, MessagingCampaignJob: _create_campaign, MessagingNumberJob: _add_number,
    MessagingAssignmentJob: _assign_number, MessagingStatusJob: lambda s, m, _job: status_view(s, m),
}


def run_tendlc_job(session: Session, who: Principal, job: Any, _today: dt.date) -> dict[str, Any]:
    """The admin handler of every hexavox.messaging.* job (the runner checked the key may act for the merchant)."""
    merchant = load_merchant(session, who.tenant_id, job.merchant_id, must_be_active=False)
    who.require_channel("SMS")
    return _JOBS[type(job)](session, merchant, job)


# Registrar decisions

def _status_of(row: Row) -> str | None:
    return row.assignment if isinstance(row, MessagingNumber) else row.status


def apply_update(session: Session, update: Update) -> bool:
    """Apply one registrar decision to the row of ``update.our_id``; False when unknown or already so."""
    if update.status not in _STATUSES[update.kind]:
        log.warning("registrar sent status %r for a %s: ignored", update.status[:20], update.kind.value)
        return False
    if update.event_id and not record_event(session, REGISTRAR_EVENTS, update.event_id):
        return False  # a replayed (or redelivered) webhook: applied once already
    key = {Kind.BRAND: MessagingBrand.brand_id, Kind.CAMPAIGN: MessagingCampaign.campaign_id,
           Kind.ASSIGNMENT: MessagingNumber.registrar_ref}[update.kind]
    row = session.scalars(select(_MODELS[update.kind]).where(key == update.our_id).with_for_update()).first()
    if not isinstance(row, MessagingBrand | MessagingCampaign | MessagingNumber):
        return False
    if (_status_of(row) == update.status and list(row.reasons) == list(update.reasons)):
        return False
    if isinstance(row, MessagingNumber):
        row.assignment = update.status
    else:
        row.status = update.status
    row.reasons = list(update.reasons)
    log.info("10DLC %s (row %d) is now %s", update.kind.value.lower(), row.id, update.status)  # ids name numbers
    return True


@dataclass
class SyncCounts:
    submitted: int = 0
    decided: int = 0
    pending: int = 0
    unreachable: int = 0
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Pending:
    kind: Kind
    pk: int
    our_id: str
    submitted_at: dt.datetime | None
    fields: dict[str, Any]


def _our_id(kind: Kind, row: Row) -> str:
    """Brands and campaigns by their own ids; an assignment by the number and campaign (a new one on each move)."""
    if isinstance(row, MessagingBrand):
        return row.brand_id
    if isinstance(row, MessagingCampaign):
        return row.campaign_id
    return row.registrar_ref or f"{row.number}@{row.campaign_pk}"


def _pending_of(session: Session, kind: Kind, limit: int) -> list[Row]:
    if kind == Kind.BRAND:
        return list(session.scalars(select(MessagingBrand).where(MessagingBrand.status == "PENDING")
                                    .order_by(MessagingBrand.id).limit(limit)))
    if kind == Kind.CAMPAIGN:
        return list(session.scalars(select(MessagingCampaign).where(MessagingCampaign.status == "PENDING")
                                    .order_by(MessagingCampaign.id).limit(limit)))
    return list(session.scalars(select(MessagingNumber).where(MessagingNumber.assignment == "PENDING")
                                .order_by(MessagingNumber.id).limit(limit)))


def _pending_rows(session: Session, limit: int) -> list[_Pending]:
    found: list[_Pending] = []
    for kind in Kind:
        for row in _pending_of(session, kind, limit):
            fields = {"useCase": row.use_case} if isinstance(row, MessagingCampaign) else {}
            found.append(_Pending(kind, row.id, _our_id(kind, row), row.submitted_at, fields))
    return found


def _load(session: Session, kind: Kind, pk: int) -> Row | None:
    model = _MODELS[kind]
    row = session.get(model, pk, with_for_update=True)
    return row if isinstance(row, MessagingBrand | MessagingCampaign | MessagingNumber) else None


def sync_registrations(session_scope: Callable[[], Any], registrar: Registrar, *, now: dt.datetime | None = None,
                       limit: int = 200) -> SyncCounts:
    """One poll: submit what was never submitted, ask about what is PENDING, apply what was decided.

    The registrar is called outside any transaction; each row's answer is applied in a short one of its own.
    """
    counts = SyncCounts()
    with session_scope() as session:
        pending = _pending_rows(session, limit)
    for item in pending:
        when = now or utcnow()
        try:
            decision = registrar.lookup(item.kind, item.our_id, item.submitted_at, when)
            if decision.status is None:  # never reached the registrar (or it lost it): submit now
                decision = registrar.submit(Submission(item.kind, item.our_id, item.fields), when)
                counts.submitted += 1
        except OSError as err:
            counts.unreachable += 1
            log.warning("registrar %s unreachable (%s): the next poll asks again", registrar.name, type(err).__name__)
            continue
        with session_scope() as session:
            _record(session, item, decision, when, counts)
    return counts


def _record(session: Session, item: _Pending, decision: Decision, when: dt.datetime, counts: SyncCounts) -> None:
    row = _load(session, item.kind, item.pk)
    if row is None or _status_of(row) != "PENDING":
        return  # decided meanwhile (a webhook) or moved on: nothing to do
    if row.submitted_at is None:
        row.submitted_at = when
    # An assignment is known to the registrar by the id we gave it; brands and campaigns by the registrar's ref.
    row.registrar_ref = item.our_id if isinstance(row, MessagingNumber) else (
        row.registrar_ref or decision.registrar_ref)
    if decision.status in (None, "PENDING"):
        counts.pending += 1
        return
    session.flush()
    if apply_update(session, Update(item.kind, item.our_id, str(decision.status), decision.reasons)):
        counts.decided += 1
        counts.changes.append(f"{item.kind.value}:{decision.status}")

