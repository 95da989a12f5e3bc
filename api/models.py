"""The HTTP API's response shapes (seed 003's views), as pydantic models the OpenAPI document is generated from.

Request bodies are the queue contract's own models (:mod:`worker.contract`), published under seed 003's names
without the fields a door fills in (:data:`REQUESTS`). Responses allow extra fields: a field added to a view later
does not contradict a client generated from an older document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.contract import (
    BillingUpgradeJob,
    CampaignCreateJob,
    ConsentBulkJob,
    ConsentUpsertJob,
    EmailJob,
    ListCreateJob,
    ListImportJob,
    MerchantUpsertJob,
    MessagingAssignmentJob,
    MessagingBrandJob,
    MessagingCampaignJob,
    MessagingNumberJob,
    SipCredentialJob,
    SipPresenceJob,
    SmsJob,
    VoiceJob,
)

__all__ = ["PATH_FIELDS", "REQUESTS", "RESPONSES", "ErrorBody"]


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_View):
    """A catalogue refusal: its code, name, detail, and the field it is about."""

    code: str = Field(pattern=r"^E[0-9]{3}$", examples=["E801"])
    name: str = ""
    detail: str = ""
    field: str | None = None


class MessageRow(_View):
    """One recipient of a send: its message id and QUEUED / SCHEDULED, or REFUSED with the catalogue error."""

    messageId: str
    to: str
    channel: Literal["SMS", "VOICE", "EMAIL"]
    status: str = Field(examples=["QUEUED"])
    units: int | None = None
    error: ErrorDetail | None = None


class ErrorBody(_View):
    """Every refusal: the catalogue code, name, detail and field; a refused send also lists its messages."""

    code: str = Field(pattern=r"^E[0-9]{3}$", examples=["E801"])
    name: str
    detail: str
    field: str | None = None
    requestId: str
    messages: list[MessageRow] | None = None


class DispatchResponse(_View):
    """A send accepted (committed): the first message's id and status, and every message of the request."""

    requestId: str
    merchantId: str
    channel: Literal["SMS", "VOICE", "EMAIL"]
    messageId: str
    status: str = Field(examples=["QUEUED"])
    messages: list[MessageRow]
    warnings: list[str] = []


class V1MessageResponse(_View):
    """The simple email endpoint's answer."""

    requestId: str
    messageId: str
    status: str = Field(examples=["QUEUED"])


class Limits(_View):
    smsLimit: int
    voiceMinutesLimit: int
    emailLimit: int


class Credits(_View):
    smsCredits: int
    voiceMinutesCredits: int
    emailCredits: int


class Usage(_View):
    smsUsed: int
    voiceUsed: int
    emailUsed: int
    periodStart: str | None


class MerchantView(_View):
    """A merchant with its limits, purchased credits and usage this billing period, and its billing calendar.

    Never its dlrUrl signing secret: answers are stored, so the operator hands the secret over (`hexavox merchant
    show ID --webhook-secret`).
    """

    merchantId: str
    displayName: str
    active: bool
    limits: Limits
    credits: Credits
    usage: Usage
    billingPeriod: Literal["WEEKLY", "MONTHLY", "QUARTERLY", "YEARLY"]
    billingDay: int


class ConsentView(_View):
    merchantId: str
    channel: Literal["SMS", "VOICE", "EMAIL"]
    contact: str
    status: Literal["OPT_IN", "OPT_OUT"]
    source: str
    updatedAt: str | None = None


class ConsentBulkResult(_View):
    index: int
    outcome: Literal["OK", "REFUSED"]
    error: dict[str, Any] | None = None


class ConsentBulkView(_View):
    merchantId: str
    results: list[ConsentBulkResult]


class MerchantUpgradeView(_View):
    merchantId: str
    channel: Literal["SMS", "VOICE", "EMAIL"]
    unitsRequested: int
    amountCents: int
    currency: str
    paymentId: str
    paymentStatus: str = Field(examples=["PENDING"])
    fulfilled: bool
    referenceId: str
    remainingCredits: int


class AlertView(_View):
    id: int
    kind: str
    merchantId: str | None
    detail: dict[str, Any]
    createdAt: str


class V1UsageReportResponse(_View):
    """Counts, cost, markup and final charges, with freshnessState PROVISIONAL (and why) until all is FINAL."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    date_from: str = Field(alias="from")
    date_to: str = Field(alias="to")
    merchantId: str | None = None
    totalSmsCount: int
    totalVoiceCount: int
    totalEmailCount: int
    providerCost: str = Field(examples=["0.01"])
    markup: str
    finalCharges: str
    awsCost: str = Field(description="seed 003's name for providerCost")
    hqMarkup: str = Field(description="seed 003's name for markup")
    freshnessState: Literal["PROVISIONAL", "FINAL"]
    freshnessReason: str | None


class HistoryEntry(_View):
    to: str
    at: str | None
    from_state: str | None = Field(default=None, alias="from")


class MessageView(_View):
    """One message: state, freshness (FINAL is billing-safe), units charged, and every transition so far."""

    messageId: str
    requestId: str
    merchantId: str
    channel: Literal["SMS", "VOICE", "EMAIL"]
    type: str
    to: str
    status: str
    freshnessState: Literal["PROVISIONAL", "FINAL"]
    units: int
    errorCode: str | None
    scheduledAt: str | None
    createdAt: str | None
    updatedAt: str | None
    finalAt: str | None
    history: list[HistoryEntry]


class ListView(_View):
    listId: str
    added: int
    rejected: list[dict[str, Any]]


class CampaignCreated(_View):
    """The answer to a campaign create: its id (a request id), state, planned recipients and time."""

    campaignId: str
    state: str = Field(examples=["RUNNING"])
    planned: int
    scheduledAt: str


class CampaignView(_View):
    """A campaign's state and counts, read at any time."""

    campaignId: str
    merchantId: str
    name: str
    channel: str
    type: str
    state: str = Field(examples=["RUNNING"])
    scheduledAt: str | None
    startedAt: str | None
    finishedAt: str | None
    counts: dict[str, Any]


class V1MerchantMessagingBrandView(_View):
    """A merchant's 10DLC brand: PENDING until the registrar says VERIFIED, or UNVERIFIED/FAILED with reasons."""

    merchantId: str
    brandId: str
    legalName: str
    taxId: str = Field(description="masked: the last 4 characters only")
    country: str
    vertical: str
    status: Literal["PENDING", "VERIFIED", "UNVERIFIED", "FAILED"]
    reasons: list[str]
    registrar: str
    updatedAt: str | None


class V1MerchantMessagingCampaignView(_View):
    """A 10DLC campaign: PENDING, ACTIVE, REJECTED (reasons) or SUSPENDED; ``covers`` are the SMS types it may carry."""

    merchantId: str
    campaignId: str
    brandId: str
    useCase: str
    covers: list[Literal["OTP", "TXN", "MKT"]]
    status: Literal["PENDING", "ACTIVE", "REJECTED", "SUSPENDED"]
    reasons: list[str]
    updatedAt: str | None


class V1MerchantMessagingNumberView(_View):
    """A messaging number and its assignment (None until assigned; PENDING, ASSIGNED or FAILED)."""

    merchantId: str
    number: str
    source: Literal["BUY", "BYO"]
    campaignId: str | None
    assignment: Literal["PENDING", "ASSIGNED", "FAILED"] | None
    reasons: list[str]
    updatedAt: str | None
    canSend: list[Literal["OTP", "TXN", "MKT"]] | None = Field(
        default=None, description="status view only: the SMS types this number may send to the US now")


class V1MerchantMessagingStatusResponse(_View):
    """The merchant's 10DLC compliance view."""

    merchantId: str
    brand: V1MerchantMessagingBrandView | None
    campaigns: list[V1MerchantMessagingCampaignView]
    numbers: list[V1MerchantMessagingNumberView]


class V1VoiceSipAgent(_View):
    username: str
    domain: str
    transport: Literal["UDP", "TCP", "TLS", "WSS"]
    presence: Literal["AVAILABLE", "BUSY", "OFFLINE"]
    presenceAt: str | None


class V1VoiceSipCredentialCreated(V1VoiceSipAgent):
    """New SIP credentials. ``secret`` is shown in this answer only: it is stored as a digest and never shown again
    (not to an Idempotency-Key retry, not in the job's stored answer)."""

    merchantId: str
    secret: str | None = Field(default=None, description="the SIP password, shown once")


class V1VoiceSipPresenceView(V1VoiceSipAgent):
    merchantId: str


class BrowserCalling(_View):
    tokenPath: str
    ttlSeconds: int


class V1VoiceProvisioningResponse(_View):
    """SIP and browser voice provisioning of a merchant: domain, transports, agents with presence."""

    merchantId: str
    sipDomain: str
    transports: list[str]
    agents: list[V1VoiceSipAgent]
    browserCalling: BrowserCalling


class V1VoiceBrowserTokenResponse(_View):
    """A short-lived signed token a browser softphone logs in with (never stored, never logged)."""

    merchantId: str
    username: str
    token: str
    expiresAt: str


#: Request bodies: seed 003's name -> the contract model it is (fields a door fills in are left out).
REQUESTS: dict[str, type[BaseModel]] = {
    "V1MerchantUpsertRequest": MerchantUpsertJob, "V1MerchantConsentRequest": ConsentUpsertJob,
    "V1MerchantConsentBulkRequest": ConsentBulkJob, "V1OmniSmsSendRequest": SmsJob,
    "V1OmniVoiceSendRequest": VoiceJob, "V1OmniEmailSendRequest": EmailJob, "V1EmailSendRequest": EmailJob,
    "V1MerchantUpgradeRequest": BillingUpgradeJob, "V1ListCreateRequest": ListCreateJob,
    "V1ListImportRequest": ListImportJob, "V1CampaignCreateRequest": CampaignCreateJob,
    "V1MerchantMessagingBrandRequest": MessagingBrandJob, "V1MerchantMessagingCampaignRequest": MessagingCampaignJob,
    "V1MerchantMessagingNumberRequest": MessagingNumberJob,
    "V1MerchantMessagingAssignmentRequest": MessagingAssignmentJob,
    "V1VoiceSipCredentialRequest": SipCredentialJob, "V1VoiceSipPresenceRequest": SipPresenceJob,
}
#: Request fields the door fills in from the path (``/merchants/{merchantId}/messaging/*``), not from the body.
PATH_FIELDS: dict[str, tuple[str, ...]] = {name: ("merchantId",) for name in REQUESTS
                                           if name.startswith("V1MerchantMessaging")}

RESPONSES: tuple[type[BaseModel], ...] = (
    ErrorBody, DispatchResponse, V1MessageResponse, MerchantView, ConsentView, ConsentBulkView, MerchantUpgradeView,
    AlertView, V1UsageReportResponse, MessageView, ListView, CampaignCreated, CampaignView,
    V1MerchantMessagingBrandView, V1MerchantMessagingCampaignView, V1MerchantMessagingNumberView,
    V1MerchantMessagingStatusResponse, V1VoiceProvisioningResponse, V1VoiceSipCredentialCreated,
    V1VoiceSipPresenceView, V1VoiceBrowserTokenResponse,
)
