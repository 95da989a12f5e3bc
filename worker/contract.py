"""The published intake contract: versioned task names and the JSON payload of each job.

Other services enqueue a job by task name with one JSON object as its only argument (see
:mod:`worker.client`, or publish the same JSON with any AMQP/Redis client). The models are
deliberately loose about formats (``to`` is any string): format rules belong to
:mod:`worker.validation`, which answers with catalogue codes; the models only fix the shape.
``hexavox contract --write`` regenerates the JSON Schemas in ``schema/contract/``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["Credentials", "SmsNode", "SmsJob", "VoiceJob", "EmailJob", "MerchantUpsertJob", "ConsentUpsertJob",
           "ConsentBulkJob", "ListCreateJob", "ListImportJob", "BillingUpgradeJob", "BillingConfirmJob", "JOBS",
           "UsageReportJob", "AlertsListJob"]


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


class Credentials(_Job):
    """Tenant credentials named by every job (seed 003: X-API-KEY / X-API-SECRET)."""

    key_id: str = Field(alias="keyId", max_length=64)
    secret: str = Field(max_length=256)


class _AuthenticatedJob(_Job):
    auth: Credentials
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey", max_length=255)


class SmsNode(_Job):
    """One entry of the batch form: a recipient and, optionally, its own body."""

    to: JsonValue = None
    body: JsonValue = None


class SmsJob(_AuthenticatedJob):
    """hexavox.sms.send.v1 — single, several ``to`` (list or comma-separated), list, or batch (``sms`` nodes)."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    to: JsonValue = None
    list_id: str | None = Field(default=None, alias="listId", max_length=64)
    sms: list[SmsNode] | None = None
    body: JsonValue = None
    sender: JsonValue = None
    type: JsonValue = None
    ref: JsonValue = None
    time: JsonValue = None
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)
    unicode: JsonValue = "AUTO"
    flash: JsonValue = 0
    campaign_name: JsonValue = Field(default=None, alias="campaignName")


class VoiceJob(_AuthenticatedJob):
    """hexavox.voice.send.v1 — a text-to-speech call."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    to: JsonValue = None
    text: JsonValue = None
    type: Literal["OTP", "TXN", "MKT", "REMINDER"] = "TXN"
    record: JsonValue = False
    timeout_seconds: JsonValue = Field(default=30, alias="timeoutSeconds")
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)


class EmailJob(_AuthenticatedJob):
    """hexavox.email.send.v1 — an HTML email."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    to: JsonValue = None
    subject: JsonValue = None
    body: JsonValue = None
    type: Literal["TRANSACTIONAL", "MARKETING"] = "TRANSACTIONAL"
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)


class MerchantUpsertJob(_AuthenticatedJob):
    """hexavox.merchant.upsert.v1 — create or update a merchant under the authenticated tenant."""

    merchant_id: str = Field(alias="merchantId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    display_name: str = Field(alias="displayName", min_length=1, max_length=200)
    active: bool = True
    sms_limit: int = Field(default=0, alias="smsLimit", ge=0, le=10**12)
    voice_minutes_limit: int = Field(default=0, alias="voiceMinutesLimit", ge=0, le=10**12)
    email_limit: int = Field(default=0, alias="emailLimit", ge=0, le=10**12)
    timezone: str = Field(default="UTC", max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
    #: Which SMS types are enabled (routes): e.g. {"OTP": true, "TXN": true, "MKT": false}. Missing means enabled.
    routes: dict[Literal["OTP", "TXN", "MKT"], bool] = Field(default_factory=dict)
    #: Provider order per channel, e.g. {"SMS": ["primary", "backup"]}. Missing means the default provider.
    providers: dict[Literal["SMS", "VOICE", "EMAIL"], list[Annotated[str, Field(max_length=40)]]] = Field(
        default_factory=dict)
    allowed_countries: list[str] = Field(default_factory=list, alias="allowedCountries")


class ConsentUpsertJob(_AuthenticatedJob):
    """hexavox.consent.upsert.v1"""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    channel: JsonValue = None
    contact: JsonValue = None
    status: Literal["OPT_IN", "OPT_OUT"]
    source: str = Field(default="api", max_length=100)


class ConsentBulkJob(_AuthenticatedJob):
    """hexavox.consent.bulk_upsert.v1 — many consents of one merchant; each row answered on its own."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    consents: list[dict[str, JsonValue]] = Field(max_length=10_000)


class ListCreateJob(_AuthenticatedJob):
    """hexavox.list.create.v1 — a named contact list, optionally with members."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    list_id: str = Field(alias="listId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    contacts: list[JsonValue] = Field(default_factory=list, max_length=100_000)


class ListImportJob(_AuthenticatedJob):
    """hexavox.list.import_csv.v1 — fill a list from a CSV upload (base64), E638-E642 rules."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    list_id: str = Field(alias="listId", min_length=1, max_length=64)
    filename: str = Field(default="", max_length=255)
    source: JsonValue = None
    content_base64: str | None = Field(default=None, alias="contentBase64", max_length=1_500_000)


class BillingUpgradeJob(_AuthenticatedJob):
    """hexavox.billing.upgrade.v1 — request units; credited once the payment is confirmed. Idempotent by referenceId."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    channel: Literal["SMS", "VOICE", "EMAIL"]
    units: int = Field(gt=0, le=10**9)
    amount_cents: int = Field(alias="amountCents", ge=0, le=10**12)
    currency: str = Field(default="USD", pattern=r"^[A-Za-z]{3}$")
    payment_method_id: str = Field(default="", alias="paymentMethodId", max_length=100)
    reference_id: str = Field(alias="referenceId", min_length=1, max_length=100)
    note: str = Field(default="", max_length=500)


class BillingConfirmJob(_AuthenticatedJob):
    """hexavox.billing.confirm.v1 — the payment for referenceId succeeded (or failed): credit the units once."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    reference_id: str = Field(alias="referenceId", min_length=1, max_length=100)
    succeeded: bool = True


class UsageReportJob(_AuthenticatedJob):
    """hexavox.report.usage.v1 — counts, provider cost, markup and final charges for whole UTC days [from, to].

    Without merchantId the report covers every merchant of the tenant.
    """

    merchant_id: str | None = Field(default=None, alias="merchantId", max_length=64)
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")


class AlertsListJob(_AuthenticatedJob):
    """hexavox.alerts.list.v1 — the tenant's usage and provider alerts, newest first."""

    merchant_id: str | None = Field(default=None, alias="merchantId", max_length=64)
    limit: int = Field(default=100, ge=1, le=1000)


#: Task name -> payload model. The version suffix changes only with an incompatible payload change.
JOBS: dict[str, type[_AuthenticatedJob]] = {
    "hexavox.sms.send.v1": SmsJob,
    "hexavox.voice.send.v1": VoiceJob,
    "hexavox.email.send.v1": EmailJob,
    "hexavox.merchant.upsert.v1": MerchantUpsertJob,
    "hexavox.consent.upsert.v1": ConsentUpsertJob,
    "hexavox.consent.bulk_upsert.v1": ConsentBulkJob,
    "hexavox.list.create.v1": ListCreateJob,
    "hexavox.list.import_csv.v1": ListImportJob,
    "hexavox.billing.upgrade.v1": BillingUpgradeJob,
    "hexavox.billing.confirm.v1": BillingConfirmJob,
    "hexavox.report.usage.v1": UsageReportJob,
    "hexavox.alerts.list.v1": AlertsListJob,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per task name, as shipped in schema/contract/."""
    return {name: model.model_json_schema(by_alias=True) for name, model in JOBS.items()}
