"""The API's endpoints as data: one table the router and the OpenAPI document are both built from.

Each operation names its request body (a component of :data:`api.models.REQUESTS`), its answer model and status,
its query parameters, and the queue job it runs (``job``: the task name of :mod:`worker.contract`); reads without
a job are answered by :mod:`api.reads`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from api import models

__all__ = ["PREFIX", "OPERATIONS", "Operation", "Param"]

PREFIX = "/api/v1"


@dataclass(frozen=True)
class Param:
    """A query or path parameter, with the JSON Schema it is documented (and checked) with."""

    name: str
    schema: dict[str, Any]
    where: str = "query"
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    summary: str
    tag: str
    answer: type[BaseModel]
    status: int = 200
    request: str | None = None
    job: str | None = None
    many: bool = False
    params: tuple[Param, ...] = field(default_factory=tuple)

    @property
    def writes(self) -> bool:
        return self.method == "POST"


_MERCHANT_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
_OFFSET = Param("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0})
_DATE = {"type": "string", "format": "date"}

_CAMPAIGN_ID = Param("campaignId", {"type": "string", "minLength": 1, "maxLength": 36}, where="path", required=True)
_CAMPAIGN_MERCHANT = Param("merchantId", _MERCHANT_ID, required=True)


def _campaign_operations() -> tuple[Operation, ...]:
    """Campaigns (README, Campaigns): create one, read its state and counts, pause, resume or cancel it."""
    acts = tuple(Operation(f"{verb}Campaign", "POST", f"/campaigns/{{campaignId}}/{verb}", summary, "campaigns",
                           models.CampaignView, job=f"hexavox.campaign.{verb}.v1",
                           params=(_CAMPAIGN_ID, _CAMPAIGN_MERCHANT))
                 for verb, summary in (("pause", "Stop starting chunks; recipients not yet expanded stay unsent."),
                                       ("resume", "Continue a paused campaign where it stopped."),
                                       ("cancel", "Refuse (free, E882) every recipient not yet handed to a provider.")))
    return (
        Operation("createCampaign", "POST", "/campaigns", "A campaign to a list or to recipients, now or at `time`: "
                  "answered at once with its id and planned count.", "campaigns", models.CampaignCreated,
                  status=202, request="V1CampaignCreateRequest", job="hexavox.campaign.create.v1"),
        Operation("getCampaign", "GET", "/campaigns/{campaignId}", "A campaign's state and counts (planned, pending, "
                  "per message state, refused by code).", "campaigns", models.CampaignView,
                  job="hexavox.campaign.get.v1", params=(_CAMPAIGN_ID, _CAMPAIGN_MERCHANT)),
        *acts,
    )


_PATH_MERCHANT = Param("merchantId", _MERCHANT_ID, where="path", required=True)
_USERNAME = Param("username", {"type": "string", "minLength": 3, "maxLength": 64}, required=True)


def _messaging_operations() -> tuple[Operation, ...]:
    """10DLC (README, 10DLC messaging): brand, campaigns, numbers, assignment, and the compliance view."""
    base = "/merchants/{merchantId}/messaging"
    return (
        Operation("registerMessagingBrand", "POST", f"{base}/brand", "Register the merchant's 10DLC brand (again "
                  "after UNVERIFIED/FAILED); PENDING until the registrar decides.", "messaging",
                  models.V1MerchantMessagingBrandView, status=202, request="V1MerchantMessagingBrandRequest",
                  job="hexavox.messaging.brand.register.v1", params=(_PATH_MERCHANT,)),
        Operation("createMessagingCampaign", "POST", f"{base}/campaigns", "A 10DLC campaign of the VERIFIED brand "
                  "(use case, samples, opt-in/opt-out/help wording); PENDING until the registrar decides.",
                  "messaging", models.V1MerchantMessagingCampaignView, status=202,
                  request="V1MerchantMessagingCampaignRequest", job="hexavox.messaging.campaign.create.v1",
                  params=(_PATH_MERCHANT,)),
        Operation("addMessagingNumber", "POST", f"{base}/numbers", "Add a long code the merchant buys or brings.",
                  "messaging", models.V1MerchantMessagingNumberView, request="V1MerchantMessagingNumberRequest",
                  job="hexavox.messaging.number.add.v1", params=(_PATH_MERCHANT,)),
        Operation("assignMessagingNumber", "POST", f"{base}/assignments", "Assign a messaging number to an ACTIVE "
                  "campaign; PENDING until the registrar says ASSIGNED or FAILED.", "messaging",
                  models.V1MerchantMessagingNumberView, status=202, request="V1MerchantMessagingAssignmentRequest",
                  job="hexavox.messaging.number.assign.v1", params=(_PATH_MERCHANT,)),
        Operation("getMessagingStatus", "GET", f"{base}/status", "The 10DLC compliance view: brand, campaigns, "
                  "numbers and the SMS types each number may send to the US now.", "messaging",
                  models.V1MerchantMessagingStatusResponse, job="hexavox.messaging.status.v1",
                  params=(_PATH_MERCHANT,)),
    )


def _voice_provisioning_operations() -> tuple[Operation, ...]:
    """Voice provisioning (README, Voice provisioning): SIP credentials, presence, browser-calling tokens."""
    merchant = Param("merchantId", _MERCHANT_ID, required=True)
    return (
        Operation("getVoiceProvisioning", "GET", "/voice/provisioning", "Read SIP/browser voice provisioning details "
                  "(domain, transports, agents and their presence).", "voice",
                  models.V1VoiceProvisioningResponse, job="hexavox.provisioning.get.v1", params=(merchant,)),
        Operation("createSipCredential", "POST", "/voice/provisioning/sip-credentials", "SIP credentials for one "
                  "agent; the generated secret is in this answer only.", "voice", models.V1VoiceSipCredentialCreated,
                  status=201, request="V1VoiceSipCredentialRequest", job="hexavox.provisioning.sip.create.v1"),
        Operation("postSipPresence", "POST", "/voice/provisioning/presence", "Post an agent's SIP presence state "
                  "(AVAILABLE, BUSY, OFFLINE).", "voice", models.V1VoiceSipPresenceView,
                  request="V1VoiceSipPresenceRequest", job="hexavox.provisioning.presence.v1"),
        Operation("getVoiceBrowserToken", "GET", "/voice/provisioning/browser-token", "A short-lived signed token "
                  "for browser calling as one agent (never stored).", "voice", models.V1VoiceBrowserTokenResponse,
                  params=(merchant, _USERNAME)),
    )


OPERATIONS: tuple[Operation, ...] = (
    Operation("upsertMerchant", "POST", "/merchants", "Create or update a merchant under the authenticated tenant.",
              "merchants", models.MerchantView, request="V1MerchantUpsertRequest", job="hexavox.merchant.upsert.v1"),
    Operation("listMerchants", "GET", "/merchants", "List merchants with limits, credits, and current usage.",
              "merchants", models.MerchantView, many=True, params=(_LIMIT, _OFFSET)),
    Operation("getMerchant", "GET", "/merchants/{merchantId}", "Fetch one merchant by external merchant identifier.",
              "merchants", models.MerchantView,
              params=(Param("merchantId", _MERCHANT_ID, where="path", required=True),)),
    Operation("upsertConsent", "POST", "/consents", "Upsert recipient consent for SMS, voice, or email.",
              "consents", models.ConsentView, request="V1MerchantConsentRequest", job="hexavox.consent.upsert.v1"),
    Operation("bulkUpsertConsents", "POST", "/consents/bulk", "Upsert many consents of one merchant; each row "
              "answered on its own.", "consents", models.ConsentBulkView, request="V1MerchantConsentBulkRequest",
              job="hexavox.consent.bulk_upsert.v1"),
    Operation("listConsents", "GET", "/consents", "List consent records, optionally filtered by merchant and channel.",
              "consents", models.ConsentView, many=True,
              params=(Param("merchantId", _MERCHANT_ID), Param("channel", {"enum": ["SMS", "VOICE", "EMAIL"]}),
                      _LIMIT, _OFFSET)),
    Operation("sendSms", "POST", "/messages/sms", "Queue and dispatch an outbound merchant SMS.", "messages",
              models.DispatchResponse, status=202, request="V1OmniSmsSendRequest", job="hexavox.sms.send.v1"),
    Operation("sendVoice", "POST", "/messages/voice", "Start an outbound text-to-speech merchant voice call.",
              "messages", models.DispatchResponse, status=202, request="V1OmniVoiceSendRequest",
              job="hexavox.voice.send.v1"),
    Operation("sendEmail", "POST", "/messages/email", "Dispatch an outbound merchant email.", "messages",
              models.DispatchResponse, status=202, request="V1OmniEmailSendRequest", job="hexavox.email.send.v1"),
    Operation("sendEmailSimple", "POST", "/email/send", "Simple direct email send endpoint.", "messages",
              models.V1MessageResponse, status=202, request="V1EmailSendRequest", job="hexavox.email.send.v1"),
    Operation("getMessage", "GET", "/messages/{messageId}", "A message's state, freshness, units and history.",
              "messages", models.MessageView,
              params=(Param("messageId", {"type": "string", "minLength": 1, "maxLength": 36}, where="path",
                            required=True),)),
    Operation("requestUpgrade", "POST", "/billing/upgrade", "Request additional SMS, voice, or email units for a "
              "merchant (credited once the payment is confirmed; idempotent by referenceId).", "billing",
              models.MerchantUpgradeView, request="V1MerchantUpgradeRequest", job="hexavox.billing.upgrade.v1"),
    Operation("listAlerts", "GET", "/alerts", "List merchant usage and provider alerts for the tenant.", "reports",
              models.AlertView, many=True, job="hexavox.alerts.list.v1",
              params=(Param("merchantId", _MERCHANT_ID), _LIMIT)),
    Operation("usageReport", "GET", "/reports/usage", "Read summarized usage, cost, markup, and freshness state.",
              "reports", models.V1UsageReportResponse, job="hexavox.report.usage.v1",
              params=(Param("from", _DATE, required=True), Param("to", _DATE, required=True),
                      Param("merchantId", _MERCHANT_ID))),
    Operation("createList", "POST", "/lists", "Create a contact list (listId) of a merchant, optionally with members.",
              "lists", models.ListView, request="V1ListCreateRequest", job="hexavox.list.create.v1"),
    *_campaign_operations(),
    Operation("importList", "POST", "/lists/import", "Fill a contact list from a CSV upload (base64, at most 1 MB).",
              "lists", models.ListView, request="V1ListImportRequest", job="hexavox.list.import_csv.v1"),
    *_messaging_operations(),
    *_voice_provisioning_operations(),
)
