"""Admin jobs: merchants, consents, contact lists and billing upgrades. Each returns the view the sender gets."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import BillingUpgrade, ContactList, ContactListMember
from schema.states import ConsentStatus, PaymentStatus
from worker.catalogue import Code
from worker.contract import (
    AlertsListJob,
    BillingUpgradeJob,
    CampaignCancelJob,
    CampaignCreateJob,
    CampaignGetJob,
    CampaignPauseJob,
    CampaignResumeJob,
    ConsentBulkJob,
    ConsentUpsertJob,
    ListCreateJob,
    ListImportJob,
    MerchantUpsertJob,
    MessagingAssignmentJob,
    MessagingBrandJob,
    MessagingCampaignJob,
    MessagingNumberJob,
    MessagingStatusJob,
    SipCredentialJob,
    SipPresenceJob,
    UsageReportJob,
    VoiceProvisioningJob,
)
from worker.db import upsert_insert
from worker.errors import Refusal, ValidationError
from worker.policy.alerts import run_alerts_job
from worker.policy.auth import Principal
from worker.policy.billing import check_price, credits_of, upgrade_view
from worker.policy.campaigns import run_campaign_job
from worker.policy.consent import consent_view, set_consent
from worker.policy.idempotency import payload_digest
from worker.policy.merchants import load_merchant, merchant_view, upsert_merchant
from worker.policy.sip import run_provisioning_job
from worker.policy.tendlc import run_tendlc_job
from worker.policy.usage import run_usage_job
from worker.settings import get_settings
from worker.validation import check_channel, normalize_email, normalize_phone, parse_contact_csv
from worker.validation.masking import mask_contact

__all__ = ["run_admin_job"]


def normalize_contact(channel: str, contact: Any) -> str:
    """E.164 for phone channels, the normalised address for email."""
    if not isinstance(contact, str):
        raise ValidationError(Code.INVALID_INPUT, "contact must be a string", field="contact")
    if channel == "EMAIL":
        return normalize_email(contact, field="contact")
    return normalize_phone(contact, channel=channel, field="contact")


def _merchant_upsert(session: Session, who: Principal, job: MerchantUpsertJob, today: dt.date) -> dict[str, Any]:
    return merchant_view(session, upsert_merchant(session, who.tenant_id, job, today))


def _consent_upsert(session: Session, who: Principal, job: ConsentUpsertJob, _today: dt.date) -> dict[str, Any]:
    merchant = load_merchant(session, who.tenant_id, job.merchant_id, must_be_active=False)
    channel = check_channel(job.channel)
    who.require_channel(channel)
    contact = normalize_contact(channel, job.contact)
    updated_at = set_consent(session, merchant.id, channel, contact, ConsentStatus(job.status), job.source)
    # Answers are kept in the result backend and shown by Flower: the contact only masked.
    return consent_view(job.merchant_id, channel, mask_contact(contact), job.status, job.source, updated_at)


def _consent_bulk(session: Session, who: Principal, job: ConsentBulkJob, today: dt.date) -> dict[str, Any]:
    results = []
    for index, row in enumerate(job.consents):
        try:
            one = ConsentUpsertJob.model_validate({**row, "merchantId": job.merchant_id, "auth": job.auth})
            with session.begin_nested():
                results.append({**_consent_upsert(session, who, one, today), "index": index, "outcome": "OK"})
        except Refusal as refusal:
            results.append({"index": index, "outcome": "REFUSED", "error": refusal.as_dict()})
        except ValueError as err:  # pydantic shape errors of one row
            results.append({"index": index, "outcome": "REFUSED",
                            "error": {"code": Code.INVALID_INPUT.value, "detail": str(err).splitlines()[0][:200]}})
    return {"merchantId": job.merchant_id, "results": results}


def _list_row(session: Session, merchant_id: int, list_id: str, name: str, source: str) -> ContactList:
    row = session.scalars(select(ContactList).where(ContactList.merchant_id == merchant_id,
                                                    ContactList.external_id == list_id)).first()
    if row is None:
        row = ContactList(merchant_id=merchant_id, external_id=list_id, name=name, source=source)
        session.add(row)
        session.flush()
    return row


def _add_members(session: Session, list_pk: int, contacts: list[str]) -> int:
    if not contacts:
        return 0
    rows = [{"list_id": list_pk, "contact": c} for c in dict.fromkeys(contacts)]
    stmt = (upsert_insert(session, ContactListMember).values(rows).on_conflict_do_nothing()
            .returning(ContactListMember.id))
    return len(session.execute(stmt).all())


def _list_create(session: Session, who: Principal, job: ListCreateJob, _today: dt.date) -> dict[str, Any]:
    merchant = load_merchant(session, who.tenant_id, job.merchant_id)
    contacts, rejected = [], []
    for index, raw in enumerate(job.contacts):
        try:
            contacts.append(normalize_contact("SMS", raw))
        except Refusal as refusal:
            rejected.append({"index": index, "code": refusal.code.value})
    row = _list_row(session, merchant.id, job.list_id, job.name, "api")
    return {"listId": job.list_id, "added": _add_members(session, row.id, contacts), "rejected": rejected}


def _list_import(session: Session, who: Principal, job: ListImportJob, _today: dt.date) -> dict[str, Any]:
    merchant = load_merchant(session, who.tenant_id, job.merchant_id)
    try:
        data = base64.b64decode(job.content_base64, validate=True) if job.content_base64 else None
    except (binascii.Error, ValueError):
        raise ValidationError(Code.UPLOAD_FAILED, "contentBase64 is not valid base64", field="contentBase64") from None
    parsed = parse_contact_csv(data, job.filename, job.source)  # type: ignore[arg-type]
    row = _list_row(session, merchant.id, job.list_id, job.list_id, str(job.source))
    rejected = [{"line": line, "value": value, "code": code} for line, value, code in parsed.rejected]
    return {"listId": job.list_id, "added": _add_members(session, row.id, parsed.contacts), "rejected": rejected}


def _billing_upgrade(session: Session, who: Principal, job: BillingUpgradeJob, _today: dt.date) -> dict[str, Any]:
    """Request units at their price; they are credited only when the payment side confirms (worker.policy.billing)."""
    merchant = load_merchant(session, who.tenant_id, job.merchant_id, must_be_active=False)
    digest = payload_digest(job.model_dump(exclude={"auth", "idempotency_key"}))
    if _find_upgrade(session, merchant.id, job.reference_id) is None:  # a retry keeps its first answer
        check_price(job.channel, job.units, job.amount_cents, job.currency, get_settings().credit_prices)
        session.execute(upsert_insert(session, BillingUpgrade).values(
            merchant_id=merchant.id, channel=job.channel, units=job.units, amount_cents=job.amount_cents,
            currency=job.currency.upper(), reference_id=job.reference_id, payment_method_id=job.payment_method_id,
            payment_id=f"pay_{uuid.uuid4().hex[:16]}", payment_status=PaymentStatus.PENDING.value, fulfilled=False,
            note=job.note, payload_sha256=digest).on_conflict_do_nothing())
    row = _upgrade_row(session, merchant.id, job.reference_id)
    if row.payload_sha256 != digest:
        raise Refusal(Code.BILLING_REFERENCE_REUSED, "referenceId was used with another request", field="referenceId")
    return {"merchantId": job.merchant_id, **upgrade_view(row, credits_of(session, merchant.id, row.channel))}


def _find_upgrade(session: Session, merchant_id: int, reference_id: str) -> BillingUpgrade | None:
    return session.scalars(select(BillingUpgrade).where(BillingUpgrade.merchant_id == merchant_id,
                                                        BillingUpgrade.reference_id == reference_id)).first()


def _upgrade_row(session: Session, merchant_id: int, reference_id: str) -> BillingUpgrade:
    row = session.scalars(select(BillingUpgrade).where(BillingUpgrade.merchant_id == merchant_id,
                                                       BillingUpgrade.reference_id == reference_id)
                          .with_for_update()).first()
    if row is None:
        raise Refusal(Code.BILLING_REFERENCE_REUSED, "no upgrade with this referenceId", field="referenceId")
    return row


_HANDLERS: dict[type[BaseModel], Any] = {
    MerchantUpsertJob: _merchant_upsert, ConsentUpsertJob: _consent_upsert, ConsentBulkJob: _consent_bulk,
    ListCreateJob: _list_create, ListImportJob: _list_import, BillingUpgradeJob: _billing_upgrade,
    UsageReportJob: run_usage_job, AlertsListJob: run_alerts_job,
    CampaignCreateJob: run_campaign_job, CampaignPauseJob: run_campaign_job, CampaignResumeJob: run_campaign_job,
    CampaignCancelJob: run_campaign_job, CampaignGetJob: run_campaign_job,
    MessagingBrandJob: run_tendlc_job, MessagingCampaignJob: run_tendlc_job, MessagingNumberJob: run_tendlc_job,
    MessagingAssignmentJob: run_tendlc_job, MessagingStatusJob: run_tendlc_job,
    SipCredentialJob: run_provisioning_job, SipPresenceJob: run_provisioning_job,
    VoiceProvisioningJob: run_provisioning_job,
}


def run_admin_job(session: Session, who: Principal, job: BaseModel, today: dt.date) -> dict[str, Any]:
    """Run one admin job for ``who``; refusals propagate as :class:`Refusal`."""
    handler = _HANDLERS[type(job)]
    result: dict[str, Any] = handler(session, who, job, today)
    return result
