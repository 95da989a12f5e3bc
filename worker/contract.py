"""The published intake contract: versioned task names and the JSON payload of each job.

Other services enqueue a job by task name with one JSON object as its only argument (see
:mod:`worker.client`, or publish the same JSON with any AMQP/Redis client). The models are
deliberately loose about formats (``to`` is any string): format rules belong to
:mod:`worker.validation`, which answers with catalogue codes; the models only fix the shape.
Fields that must reach validation whatever their JSON type (so a number where text belongs
is answered with its catalogue code, not a pydantic error) are parsed as any JSON value, but
published with their documented shape (:func:`_published`): the JSON Schema tells other
services what to send, the runtime stays lenient in what it answers.
``hexavox contract --write`` regenerates the JSON Schemas in ``schema/contract/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

__all__ = ["Credentials", "SmsNode", "SmsJob", "VoiceJob", "EmailJob", "MerchantUpsertJob", "ConsentUpsertJob",
           "ConsentBulkJob", "ListCreateJob", "ListImportJob", "BillingUpgradeJob", "JOBS",
           "UsageReportJob", "AlertsListJob", "MerchantFields", "CampaignCreateJob", "CampaignActionJob",
           "CampaignPauseJob", "CampaignResumeJob", "CampaignCancelJob", "CampaignGetJob", "MessagingBrandJob",
           "MessagingCampaignJob", "MessagingNumberJob", "MessagingAssignmentJob", "MessagingStatusJob",
           "SipCredentialJob", "VoiceProvisioningJob", "SipPresenceJob"]


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


_NULL: dict[str, Any] = {"type": "null"}
_TEXT: dict[str, Any] = {"type": "string"}


def _published(*shapes: dict[str, Any], nullable: bool = True) -> WithJsonSchema:
    """Publish a field parsed as any JSON value as one of ``shapes`` (or null, meaning absent, when optional)."""
    options = [*shapes, _NULL] if nullable else list(shapes)
    return WithJsonSchema(options[0] if len(options) == 1 else {"anyOf": options})


def _required(*names: str, any_of: tuple[str, ...] = ()) -> Callable[[dict[str, Any]], None]:
    """Publish as required the fields the policy refuses a job without (each with its own catalogue code).

    The models keep them optional, so a missing one reaches the check that answers its code.
    ``any_of`` names alternatives of which at least one must be present (``to`` | ``listId`` | ``sms``).
    """
    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = sorted({*schema.get("required", ()), *names})
        for name in names:  # the model's default (None) only lets a missing field reach its check
            schema["properties"][name].pop("default", None)
        if any_of:
            schema["anyOf"] = [{"required": [name]} for name in any_of]
    return extra


def _string(**rules: Any) -> dict[str, Any]:
    return {"type": "string", **rules}


#: Seed 000 sender ids: 3-11 ASCII letters/digits with a letter, or 3-15 digits with an optional '+'.
_ALPHA_SENDER, _NUMERIC_SENDER = "^(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{3,11}$", "^\\+?[0-9]{3,15}$"
_SEND_TIME = ("dd-mm-yyyy hh:mm:ss in the merchant's time zone, or ISO 8601 date and time; "
              "15 minutes to 3 months ahead")

# SMS
_Recipients = Annotated[JsonValue, _published(_TEXT, {"type": "array", "items": _TEXT})]
_OptionalText = Annotated[JsonValue, _published(_TEXT)]
_Sender = Annotated[JsonValue, _published(_string(pattern=_ALPHA_SENDER), _string(pattern=_NUMERIC_SENDER),
                                          nullable=False)]
_SmsType = Annotated[JsonValue, _published({"enum": ["OTP", "TXN", "MKT"]}, nullable=False)]
_Ref = Annotated[JsonValue, _published(_string(pattern="^[A-Za-z0-9]{1,40}$"))]
_SendTime = Annotated[JsonValue, _published(_string(maxLength=40, description=_SEND_TIME))]
_UnicodeFlag = Annotated[JsonValue, _published({"enum": [0, 1, "0", "1", "AUTO"]})]
_FlashFlag = Annotated[JsonValue, _published({"enum": [0, 1, "0", "1"]}, {"type": "boolean"})]
_CampaignName = Annotated[JsonValue, _published(_string(pattern="^[A-Za-z0-9]{1,32}$"))]
_CampaignId = Annotated[JsonValue, _published(_string(pattern="^[A-Za-z0-9._-]{1,64}$"))]
_Port = Annotated[JsonValue, _published({"type": "integer", "minimum": 1, "maximum": 65535},
                                        _string(pattern="^[0-9]{1,5}$"))]
_DuplicateFlag = Annotated[JsonValue, _published(
    {"enum": [0, 1, "0", "1"], "description": "1: send even inside the 10-second duplicate window, when the key's "
                                              "rules include hexavox.sms.duplicate"}, {"type": "boolean"})]
_NodeRecipient = Annotated[JsonValue, _published(_string(minLength=1, pattern="^[^,]*$", description="one number"),
                                                 nullable=False)]
# Voice and email
_Phone = Annotated[JsonValue, _published(_string(minLength=1, description="E.164, e.g. +18135551234"), nullable=False)]
_VoiceText = Annotated[JsonValue, _published(_string(minLength=1, maxLength=3000), nullable=False)]
_Record = Annotated[JsonValue, _published({"type": "boolean"}, nullable=False)]
_RingSeconds = Annotated[JsonValue, _published({"type": "integer", "minimum": 5, "maximum": 120}, nullable=False)]
_EmailAddress = Annotated[JsonValue, _published(_string(format="email", maxLength=320), nullable=False)]
_Subject = Annotated[JsonValue, _published(_string(minLength=1, maxLength=998, description="one line"),
                                           nullable=False)]
_HtmlBody = Annotated[JsonValue, _published(_string(minLength=1, contentMediaType="text/html"), nullable=False)]
# Admin
_CHANNELS: dict[str, Any] = {"enum": ["SMS", "VOICE", "EMAIL"]}
_Channel = Annotated[JsonValue, _published(_CHANNELS, nullable=False)]
_Contact = Annotated[JsonValue, _published(_string(minLength=1, description="E.164 number or email address"),
                                           nullable=False)]
_ConsentRow = Annotated[dict[str, JsonValue], WithJsonSchema({
    "type": "object", "additionalProperties": False, "required": ["channel", "contact", "status"],
    "properties": {"channel": _CHANNELS, "contact": _string(minLength=1), "status": {"enum": ["OPT_IN", "OPT_OUT"]},
                   "source": _string(maxLength=100)}})]
_ListContact = Annotated[JsonValue, _published(_string(description="E.164 number"), nullable=False)]
_UploadSource = Annotated[JsonValue, _published(_string(pattern="^[A-Za-z]{3,10}$"), nullable=False)]


class Credentials(_Job):
    """A key id and its secret (seed 003: X-API-KEY / X-API-SECRET), for callers in the service's own process."""

    key_id: str = Field(alias="keyId", max_length=64)
    secret: str = Field(max_length=256)


class _AuthenticatedJob(_Job):
    #: In-process callers only (the CLI, tests): key id and secret. Not published in the schemas, and refused on
    #: the broker, where a job proves its publisher with a signed envelope header instead (worker/envelope.py).
    auth: Annotated[Credentials | None, SkipJsonSchema()] = None
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey", max_length=255)


#: Any job of the published contract: each carries the caller (in-process ``auth``) and an idempotency key.
Job = _AuthenticatedJob


class SmsNode(_Job):
    """One entry of the batch form: a recipient and, optionally, its own body."""

    model_config = ConfigDict(json_schema_extra=_required("to"))

    to: _NodeRecipient = None
    body: _OptionalText = None


class SmsJob(_AuthenticatedJob):
    """hexavox.sms.send.v1 — single, several ``to`` (list or comma-separated), list, or batch (``sms`` nodes)."""

    model_config = ConfigDict(json_schema_extra=_required("sender", "type", any_of=("to", "listId", "sms")))

    merchant_id: str = Field(alias="merchantId", max_length=64)
    to: _Recipients = None
    list_id: str | None = Field(default=None, alias="listId", max_length=64)
    sms: list[SmsNode] | None = Field(default=None, json_schema_extra={"maxItems": 1000})
    body: _OptionalText = None
    sender: _Sender = None
    type: _SmsType = None
    ref: _Ref = None
    time: _SendTime = None
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)
    unicode: _UnicodeFlag = "AUTO"
    flash: _FlashFlag = 0
    campaign_name: _CampaignName = Field(default=None, alias="campaignName")
    #: Seed 000's other optional parameters: application port (E603), the duplicate-guard waiver (E605), two more
    #: reference tags (E609, E610) and the merchant's campaign id (E617).
    port: _Port = None
    duplicate: _DuplicateFlag = 0
    ref1: _Ref = None
    ref2: _Ref = None
    campaign_id: _CampaignId = Field(default=None, alias="campaignId")


class VoiceJob(_AuthenticatedJob):
    """hexavox.voice.send.v1 — a text-to-speech call."""

    model_config = ConfigDict(json_schema_extra=_required("to", "text"))

    merchant_id: str = Field(alias="merchantId", max_length=64)
    to: _Phone = None
    text: _VoiceText = None
    type: Literal["OTP", "TXN", "MKT", "REMINDER"] = "TXN"
    record: _Record = False
    timeout_seconds: _RingSeconds = Field(default=30, alias="timeoutSeconds")
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)
    #: REMINDER and TXN calls: connect the callee to an AVAILABLE agent of the merchant (SIP presence), where the
    #: provider can (ignored otherwise).
    ring_agent: bool = Field(default=False, alias="ringAgent")


class EmailJob(_AuthenticatedJob):
    """hexavox.email.send.v1 — an HTML email."""

    model_config = ConfigDict(json_schema_extra=_required("to", "subject", "body"))

    merchant_id: str = Field(alias="merchantId", max_length=64)
    to: _EmailAddress = None
    subject: _Subject = None
    body: _HtmlBody = None
    type: Literal["TRANSACTIONAL", "MARKETING"] = "TRANSACTIONAL"
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)


class MerchantFields(_Job):
    """A merchant as created or updated, by the upsert job or by ``hexavox merchant create|set-limits``.

    Create fills every field left out with its default (limits from ``HEXAVOX_NEW_MERCHANT_LIMITS``);
    update changes only the fields given, so re-sending a merchant without ``voiceMinutesLimit`` keeps
    its voice limit. A field sent as null counts as left out.
    """

    merchant_id: str = Field(alias="merchantId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    #: Default on create: the merchantId.
    display_name: str | None = Field(default=None, alias="displayName", min_length=1, max_length=200)
    #: Default on create: true.
    active: bool | None = None
    sms_limit: int | None = Field(default=None, alias="smsLimit", ge=0, le=10**12)
    voice_minutes_limit: int | None = Field(default=None, alias="voiceMinutesLimit", ge=0, le=10**12)
    email_limit: int | None = Field(default=None, alias="emailLimit", ge=0, le=10**12)
    #: IANA time zone; default on create: UTC.
    timezone: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
    #: Which SMS types are enabled (routes): e.g. {"OTP": true, "TXN": true, "MKT": false}. Missing means enabled.
    routes: dict[Literal["OTP", "TXN", "MKT"], bool] = Field(default_factory=dict)
    #: Provider order per channel, e.g. {"SMS": ["primary", "backup"]}. Missing means the default provider.
    providers: dict[Literal["SMS", "VOICE", "EMAIL"], list[Annotated[str, Field(max_length=40)]]] = Field(
        default_factory=dict)
    #: Provider order for one type of a channel, winning over ``providers`` for that type, e.g.
    #: {"SMS": {"OTP": ["fast-otp", "primary"]}, "EMAIL": {"MARKETING": ["bulk-mail"]}}.
    providers_by_type: dict[Literal["SMS", "VOICE", "EMAIL"],
                            dict[Literal["OTP", "TXN", "MKT", "REMINDER", "TRANSACTIONAL", "MARKETING"],
                                 list[Annotated[str, Field(max_length=40)]]]] = Field(
        default_factory=dict, alias="providersByType")
    #: ISO country codes the merchant may send to; empty means any. Default on create: empty.
    allowed_countries: list[str] | None = Field(default=None, alias="allowedCountries")
    #: How long limits last before usage starts again from 0, in the merchant's time zone; absent: unchanged
    #: (MONTHLY for a new merchant). ``billingDay``: the day of the month a period starts (1-28), or the ISO
    #: weekday (1 = Monday) for WEEKLY; absent: unchanged (1 for a new merchant).
    billing_period: Literal["WEEKLY", "MONTHLY", "QUARTERLY", "YEARLY"] | None = Field(
        default=None, alias="billingPeriod")
    billing_day: int | None = Field(default=None, alias="billingDay", ge=1, le=28)


class MerchantUpsertJob(_AuthenticatedJob, MerchantFields):
    """hexavox.merchant.upsert.v1 — create or update a merchant under the authenticated tenant.

    Create: fields left out take their defaults. Update: only the fields given change.
    """


class ConsentUpsertJob(_AuthenticatedJob):
    """hexavox.consent.upsert.v1"""

    model_config = ConfigDict(json_schema_extra=_required("channel", "contact"))

    merchant_id: str = Field(alias="merchantId", max_length=64)
    channel: _Channel = None
    contact: _Contact = None
    status: Literal["OPT_IN", "OPT_OUT"]
    source: str = Field(default="api", max_length=100)


class ConsentBulkJob(_AuthenticatedJob):
    """hexavox.consent.bulk_upsert.v1 — many consents of one merchant; each row answered on its own."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    consents: list[_ConsentRow] = Field(max_length=10_000)


class ListCreateJob(_AuthenticatedJob):
    """hexavox.list.create.v1 — a named contact list, optionally with members."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    list_id: str = Field(alias="listId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    contacts: list[_ListContact] = Field(default_factory=list, max_length=100_000)


class ListImportJob(_AuthenticatedJob):
    """hexavox.list.import_csv.v1 — fill a list from a CSV upload (base64), E638-E642 rules."""

    model_config = ConfigDict(json_schema_extra=_required("filename", "source", "contentBase64"))

    merchant_id: str = Field(alias="merchantId", max_length=64)
    list_id: str = Field(alias="listId", min_length=1, max_length=64)
    filename: str = Field(default="", max_length=255, json_schema_extra={"pattern": "\\.[Cc][Ss][Vv]$"})
    source: _UploadSource = None
    content_base64: str | None = Field(default=None, alias="contentBase64", max_length=1_500_000)


class BillingUpgradeJob(_AuthenticatedJob):
    """hexavox.billing.upgrade.v1 — request units at their price (amountCents = units x the channel's price, USD);
    credited once the payment side confirms the payment (never by a tenant job). Idempotent by referenceId."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    channel: Literal["SMS", "VOICE", "EMAIL"]
    units: int = Field(gt=0, le=10**9)
    amount_cents: int = Field(alias="amountCents", ge=0, le=10**12)
    currency: str = Field(default="USD", pattern=r"^[A-Za-z]{3}$")
    payment_method_id: str = Field(default="", alias="paymentMethodId", max_length=100)
    reference_id: str = Field(alias="referenceId", min_length=1, max_length=100)
    note: str = Field(default="", max_length=500)


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


def _campaign_schema(schema: dict[str, Any]) -> None:
    """Publish what each channel's policy refuses a campaign without: ``body`` always, ``to`` or ``listId``, an SMS
    campaign's ``sender`` (``channel`` left out means SMS) and an EMAIL campaign's ``subject``."""
    _required("body", any_of=("to", "listId"))(schema)
    schema["properties"]["sender"].pop("default", None)
    schema["properties"]["subject"].pop("default", None)
    sms = {"anyOf": [{"not": {"required": ["channel"]}}, {"required": ["channel"],
                                                          "properties": {"channel": {"const": "SMS"}}}]}
    email = {"required": ["channel"], "properties": {"channel": {"const": "EMAIL"}}}
    schema["allOf"] = [{"if": sms, "then": {"required": ["sender"]}},
                       {"if": email, "then": {"required": ["subject"], "not": {"required": ["listId"]}}}]


_CAMPAIGN_TYPE = Annotated[JsonValue, _published({
    "enum": ["OTP", "TXN", "MKT", "REMINDER", "TRANSACTIONAL", "MARKETING"],
    "description": "SMS: TXN, MKT (OTP to one number); VOICE: TXN, MKT, REMINDER (OTP to one number); EMAIL: "
                   "TXN or TRANSACTIONAL, MKT or MARKETING. A list send is MKT."}, nullable=False)]


class CampaignCreateJob(_AuthenticatedJob):
    """hexavox.campaign.create.v1 — one campaign to a list or to recipients, now or at ``time``; answered at once.

    Recipients are expanded later, in chunks; the answer carries the campaign id and the planned count. ``channel``
    picks the send whose rules apply: SMS (``sender``, ``unicode``, ``flash``, ``ref``), VOICE (``body`` is the text
    spoken; ``record``, ``timeoutSeconds`` as the voice send has them) or EMAIL (``body`` is the HTML, with
    ``subject``; recipients are addresses in ``to``: lists hold phone numbers).
    """

    model_config = ConfigDict(json_schema_extra=_campaign_schema)

    merchant_id: str = Field(alias="merchantId", max_length=64)
    channel: _Channel = "SMS"
    to: _Recipients = None
    list_id: str | None = Field(default=None, alias="listId", max_length=64)
    body: _OptionalText = None
    sender: _Sender = None
    type: _CAMPAIGN_TYPE = "MKT"
    time: _SendTime = None
    name: _CampaignName = None
    dlr_url: str | None = Field(default=None, alias="dlrUrl", max_length=2000)
    unicode: _UnicodeFlag = "AUTO"
    flash: _FlashFlag = 0
    ref: _Ref = None
    #: VOICE only, checked as the voice send checks them.
    record: _Record = False
    timeout_seconds: _RingSeconds = Field(default=30, alias="timeoutSeconds")
    #: EMAIL only, checked as the email send checks it.
    subject: _Subject = None


class CampaignActionJob(_AuthenticatedJob):
    """hexavox.campaign.pause|resume|cancel|get.v1 — act on (or read) one campaign of a merchant by its id."""

    merchant_id: str = Field(alias="merchantId", max_length=64)
    campaign_id: str = Field(alias="campaignId", min_length=1, max_length=36)


class CampaignPauseJob(CampaignActionJob):
    """hexavox.campaign.pause.v1 — stop starting chunks; recipients not yet expanded stay unsent."""


class CampaignResumeJob(CampaignActionJob):
    """hexavox.campaign.resume.v1 — continue a paused campaign exactly where it stopped."""


class CampaignCancelJob(CampaignActionJob):
    """hexavox.campaign.cancel.v1 — refuse (free, E882) every recipient not yet handed to a provider."""


class CampaignGetJob(CampaignActionJob):
    """hexavox.campaign.get.v1 — the campaign's state and counts (planned, queued, sent, delivered, refused...)."""


class _MerchantJob(_AuthenticatedJob):
    merchant_id: str = Field(alias="merchantId", max_length=64)


_LongCode = Annotated[str, Field(min_length=3, max_length=20, description="E.164 US/CA long code, e.g. +18135550100")]
_Wording = Annotated[str, Field(min_length=1, max_length=1000)]


class BrandAddress(_Job):
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=2, max_length=50)
    postal_code: str = Field(alias="postalCode", min_length=1, max_length=20)
    country: str = Field(default="US", pattern=r"^[A-Z]{2}$")


class BrandContact(_Job):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    phone: str = Field(min_length=3, max_length=20)


class MessagingBrandJob(_MerchantJob):
    """hexavox.messaging.brand.register.v1 — register (or, after UNVERIFIED/FAILED, register again) the merchant's
    10DLC brand; answered PENDING at once, decided by the registrar later (webhook or poll)."""

    legal_name: str = Field(alias="legalName", min_length=1, max_length=200)
    tax_id: str = Field(alias="taxId", min_length=2, max_length=40, pattern=r"^[A-Za-z0-9-]+$",
                        description="EIN (US) or the business number of the brand's country")
    address: BrandAddress
    vertical: str = Field(min_length=1, max_length=40, pattern=r"^[A-Z_]+$", examples=["HEALTHCARE"])
    contact: BrandContact


class MessagingCampaignJob(_MerchantJob):
    """hexavox.messaging.campaign.create.v1 — a 10DLC campaign of the merchant's VERIFIED brand: its use case
    decides which SMS types its numbers may send (2FA: OTP; *_NOTIFICATION, CUSTOMER_CARE: TXN; MARKETING: MKT;
    MIXED: all three)."""

    use_case: Literal["2FA", "ACCOUNT_NOTIFICATION", "CUSTOMER_CARE", "DELIVERY_NOTIFICATION", "MARKETING",
                      "MIXED"] = Field(alias="useCase")
    description: str = Field(min_length=1, max_length=1000)
    sample_messages: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        alias="sampleMessages", min_length=1, max_length=5)
    opt_in: _Wording = Field(alias="optIn", description="how recipients opt in")
    opt_out: _Wording = Field(alias="optOut", description="the opt-out wording (e.g. Reply STOP to opt out)")
    help: _Wording = Field(description="the HELP answer")


class MessagingNumberJob(_MerchantJob):
    """hexavox.messaging.number.add.v1 — a long code the merchant buys (BUY) or brings (BYO) to send 10DLC SMS."""

    number: _LongCode
    source: Literal["BUY", "BYO"] = "BYO"


class MessagingAssignmentJob(_MerchantJob):
    """hexavox.messaging.number.assign.v1 — assign a messaging number to an ACTIVE campaign (PENDING until the
    registrar says ASSIGNED or FAILED); assigning it again moves it to another campaign."""

    number: _LongCode
    campaign_id: str = Field(alias="campaignId", min_length=1, max_length=36)


class MessagingStatusJob(_MerchantJob):
    """hexavox.messaging.status.v1 — the merchant's 10DLC compliance view: brand, campaigns, numbers, statuses."""


class SipCredentialJob(_MerchantJob):
    """hexavox.provisioning.sip.create.v1 — SIP credentials for one agent. The secret is shown
    once, in the HTTP answer to the request that created them; it is never stored (only its digest), kept in an
    answer, or shown again (the queue door's answer never carries it)."""

    username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    transport: Literal["UDP", "TCP", "TLS", "WSS"] = "TLS"


class VoiceProvisioningJob(_MerchantJob):
    """hexavox.provisioning.get.v1 — the merchant's SIP domain, agents (username, transport, presence)."""


class SipPresenceJob(_MerchantJob):
    """hexavox.provisioning.presence.v1 — an agent's SIP presence (AVAILABLE agents may be rung by voice
    sends of type REMINDER or TXN where the provider supports it)."""

    username: str = Field(min_length=3, max_length=64)
    state: Literal["AVAILABLE", "BUSY", "OFFLINE"]


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
    "hexavox.report.usage.v1": UsageReportJob,
    "hexavox.alerts.list.v1": AlertsListJob,
    "hexavox.campaign.create.v1": CampaignCreateJob,
    "hexavox.campaign.pause.v1": CampaignPauseJob,
    "hexavox.campaign.resume.v1": CampaignResumeJob,
    "hexavox.campaign.cancel.v1": CampaignCancelJob,
    "hexavox.campaign.get.v1": CampaignGetJob,
    "hexavox.messaging.brand.register.v1": MessagingBrandJob,
    "hexavox.messaging.campaign.create.v1": MessagingCampaignJob,
    "hexavox.messaging.number.add.v1": MessagingNumberJob,
    "hexavox.messaging.number.assign.v1": MessagingAssignmentJob,
    "hexavox.messaging.status.v1": MessagingStatusJob,
    "hexavox.provisioning.sip.create.v1": SipCredentialJob,
    "hexavox.provisioning.get.v1": VoiceProvisioningJob,
    "hexavox.provisioning.presence.v1": SipPresenceJob,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per task name, as shipped in schema/contract/."""
    return {name: model.model_json_schema(by_alias=True) for name, model in JOBS.items()}
