"""Every catalogue code the intake and admin paths can answer with, each provoked by one row of a table.

The table drives real jobs through ``run_send_job`` / ``run_admin_job_by_name`` against a fresh
PostgreSQL database. A second test keeps the table complete: a code added to the catalogue
without a row here fails it. Focused tests below check what the answers promise beyond the code.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from worker.catalogue import Code
from worker.contract import JOBS

import tendlc_support as tendlc
from factories import Tenant, make_merchant, make_tenant, opt, sms

SMS = "hexavox.sms.send.v1"
VOICE = "hexavox.voice.send.v1"
EMAIL = "hexavox.email.send.v1"
CONSENT = "hexavox.consent.upsert.v1"
LIST_CREATE = "hexavox.list.create.v1"
LIST_IMPORT = "hexavox.list.import_csv.v1"
UPGRADE = "hexavox.billing.upgrade.v1"
SEND_TASKS = frozenset({SMS, VOICE, EMAIL})

NUMBER = "+18135551234"  # a US number the library calls FIXED_LINE_OR_MOBILE: fine for SMS and voice
OTHER_NUMBER = "+18135551235"
UK_MOBILE = "+447400123456"

#: Codes no intake or admin input can produce, and why; every other code needs a row in CASES.
NOT_RAISED_AT_INTAKE = frozenset({
    Code.SUBMITTED,  # informational (seed 000 E100): an accepted message answers QUEUED, not a code
    Code.CAMPAIGN_ACCEPTED,  # informational (seed 000 E101)
    Code.INTERNAL_ERROR,  # E103 means the code crashed; test_hostile_payloads asserts it never appears
    Code.PROVIDER_REJECTED,  # E815-E818 are set by dispatch and reconcile, tested with the provider tests
    Code.PROVIDER_UNAVAILABLE,
    Code.DELIVERY_EXPIRED,
    Code.ATTEMPTS_EXHAUSTED,
    Code.CAMPAIGN_CANCELLED,  # E882 marks recipients a cancel refused; tested in test_campaigns
    Code.ENVELOPE_EXPIRED,  # E875 and E876 are the broker door's, answered before the payload: test_trust_boundary
    Code.UNDECODABLE_JOB,
    Code.PAYMENT_NOT_FOUND,  # E826 and E827 answer the payment and provider webhooks (test_billing_trust,
    Code.WEBHOOK_NOT_AUTHENTIC,  # test_web_receiver), never a job
    # The HTTP door's own (api/): test_http_api's refusal table provokes each
    Code.CLIENT_IP_NOT_ALLOWED, Code.BODY_TOO_LARGE, Code.RATE_LIMITED, Code.UNSUPPORTED_MEDIA_TYPE,
    Code.MESSAGE_NOT_FOUND,
})


# --- running jobs and reading answers ----------------------------------------------------------------------------

def run_job(task: str, payload: Any) -> dict[str, Any]:
    """The answer to one job, sent the way a worker runs it (send tasks and unknown names go through intake)."""
    from worker.runner import run_admin_job_by_name, run_send_job

    request_id = str(uuid.uuid4())
    if task in SEND_TASKS or task not in JOBS:
        return run_send_job(task, payload, request_id).result
    return run_admin_job_by_name(task, payload, request_id)


def codes_in(answer: dict[str, Any]) -> set[str]:
    """Every refusal code in an answer: the request's own and each refused message's."""
    codes = {answer["error"]["code"]} if "error" in answer else set()
    return codes | {row["error"]["code"] for row in answer.get("messages", []) if "error" in row}


def sms_used(tenant: Tenant, merchant_id: str = "gym-a") -> int:
    from schema.models import Balance
    from worker.db import session_scope
    from worker.policy.merchants import load_merchant

    with session_scope() as session:
        merchant = load_merchant(session, tenant.tenant_id, merchant_id, must_be_active=False)
        return int(session.get(Balance, (merchant.id, "SMS")).used)  # type: ignore[union-attr]


def message_count() -> int:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


# --- payload builders --------------------------------------------------------------------------------------------

def voice(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    return {"auth": tenant.auth, "merchantId": "gym-a", "to": NUMBER, "text": "Your class starts in one hour",
            **fields}


def email(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    return {"auth": tenant.auth, "merchantId": "gym-a", "to": "member@example.com", "subject": "Class moved",
            "body": "<p>Class moved to 6 pm</p>", **fields}


def admin(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """An admin job payload for gym-a; ``fields`` override the defaults of the builders below."""
    return {"auth": tenant.auth, "merchantId": "gym-a", **fields}


def csv_upload(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    content = base64.b64encode(b"phone\n+18135551234\n").decode()
    return admin(tenant, **{"listId": "vip", "filename": "members.csv", "source": "web", "contentBase64": content,
                            **fields})


def upgrade(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """25 SMS units at the default price (9,750 micro-dollars each): 24.375 cents, 25 rounded up."""
    return admin(tenant, **{"channel": "SMS", "units": 25, "amountCents": 25, "referenceId": "ref-1", **fields})


def without(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in keys}


def at(delta: dt.timedelta, fmt: str = "%d-%m-%Y %H:%M:%S") -> str:
    """A send time ``delta`` from now, in the merchant's zone (UTC)."""
    return (dt.datetime.now(dt.UTC) + delta).strftime(fmt)


def send_first(task: str, payload: Callable[[Tenant], Any]) -> Callable[[Tenant], None]:
    """A set-up step that runs one job before the case's own and checks it was accepted."""
    def step(tenant: Tenant) -> None:
        answer = run_job(task, payload(tenant))
        assert answer["status"] == "ACCEPTED", answer
    return step


_CAMPAIGNS: dict[str, str] = {}


def cancelled_campaign(tenant: Tenant) -> None:
    """A set-up step: a campaign of gym-a, created and cancelled; its id is kept for the case's payload."""
    created = run_job("hexavox.campaign.create.v1", admin(tenant, to=[NUMBER, OTHER_NUMBER], body="Sale",
                                                          sender="GYMA"))
    _CAMPAIGNS[tenant.key_id] = created["result"]["campaignId"]
    assert run_job("hexavox.campaign.cancel.v1", campaign_action(tenant))["status"] == "ACCEPTED"


def campaign_action(tenant: Tenant) -> dict[str, Any]:
    return admin(tenant, campaignId=_CAMPAIGNS.get(tenant.key_id, str(uuid.uuid4())))


def _number_of_gym_b(tenant: Tenant) -> None:
    make_merchant(tenant, "gym-b")
    tendlc.view("hexavox.messaging.number.add.v1", tenant, merchant_id="gym-b", number=tendlc.SENDER)


# --- the table ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One job that must be refused with ``code``, with the set-up it needs."""

    code: Code
    task: str
    payload: Callable[[Tenant], Any]
    tenant: dict[str, Any] = field(default_factory=dict)  # make_tenant keyword arguments (key rules)
    merchant: dict[str, Any] = field(default_factory=dict)  # make_merchant keyword arguments for gym-a
    before: Callable[[Tenant], None] | None = None


def case(code: Code, name: str, task: str, payload: Callable[[Tenant], Any], **kw: Any) -> Any:
    return pytest.param(Case(code, task, payload, **kw), id=f"{code.value}-{name}")


CASES = (
    # Rules on recipients and types (docs/contract.md 3.4)
    case(Code.BULK_MUST_BE_MKT, "list-send-of-type-TXN", SMS, lambda t: sms(t, to=None, listId="vip")),
    case(Code.SMS_TOO_LONG, "body-over-1530-characters", SMS, lambda t: sms(t, body="a" * 1531)),
    case(Code.SMS_TOO_LONG, "extension-characters-cost-two-septets", SMS, lambda t: sms(t, body="€" * 800)),
    case(Code.SCHEDULE_OUT_OF_WINDOW, "time-5-minutes-ahead", SMS, lambda t: sms(t, time=at(dt.timedelta(minutes=5)))),
    case(Code.SCHEDULE_OUT_OF_WINDOW, "time-4-months-ahead", SMS, lambda t: sms(t, time=at(dt.timedelta(days=125)))),
    case(Code.SCHEDULE_OUT_OF_WINDOW, "iso-time-in-the-past", SMS,
         lambda t: sms(t, time=at(-dt.timedelta(hours=1), "%Y-%m-%dT%H:%M:%SZ"))),
    case(Code.OTP_SINGLE_RECIPIENT, "otp-to-two-numbers", SMS, lambda t: sms(t, type="OTP", to=[NUMBER, OTHER_NUMBER])),
    case(Code.TXN_TOO_MANY_RECIPIENTS, "txn-to-101-numbers", SMS,
         lambda t: sms(t, to=[f"+1813555{n:04d}" for n in range(101)])),
    # Recipients
    case(Code.INVALID_MOBILE_NUMBER, "vanity-letters", SMS, lambda t: sms(t, to="+1 800 FLOWERS")),
    case(Code.INVALID_MOBILE_NUMBER, "plus-one-alone", SMS, lambda t: sms(t, to="+1")),
    case(Code.INVALID_MOBILE_NUMBER, "no-leading-plus", SMS, lambda t: sms(t, to="8135551234")),
    case(Code.INVALID_MOBILE_NUMBER, "extension", SMS, lambda t: sms(t, to="+44 20 7946 0958 ext. 123")),
    case(Code.INVALID_MOBILE_NUMBER, "voice-to-bad-number", VOICE, lambda t: voice(t, to="+1 800 FLOWERS")),
    case(Code.INVALID_NUMBER_TYPE, "premium-rate", SMS, lambda t: sms(t, to="+19002345678")),
    case(Code.INVALID_NUMBER_TYPE, "sms-to-uk-landline", SMS, lambda t: sms(t, to="+442071838750")),
    case(Code.DESTINATION_NOT_ALLOWED, "uk-number-for-us-only-merchant", SMS, lambda t: sms(t, to=UK_MOBILE),
         merchant={"allowed_countries": ["US"]}),
    case(Code.DESTINATION_NOT_ALLOWED, "voice-uk-number-for-us-only-merchant", VOICE, lambda t: voice(t, to=UK_MOBILE),
         merchant={"allowed_countries": ["us"]}),
    case(Code.INVALID_EMAIL, "email-to-not-an-address", EMAIL, lambda t: email(t, to="not-an-email")),
    case(Code.INVALID_EMAIL, "email-to-with-crlf", EMAIL, lambda t: email(t, to="a\r\nbcc@x.com@example.com")),
    case(Code.INVALID_EMAIL, "consent-for-bad-email", CONSENT,
         lambda t: admin(t, channel="EMAIL", contact="nobody@", status="OPT_IN")),
    # The batch form (sms nodes)
    case(Code.SMS_NODES_REQUIRED, "empty-sms-nodes", SMS, lambda t: sms(t, to=None, sms=[])),
    case(Code.SMS_NODE_TO_REQUIRED, "node-without-to", SMS, lambda t: sms(t, to=None, sms=[{"body": "hi"}])),
    case(Code.TOO_MANY_SMS_NODES, "1001-nodes", SMS, lambda t: sms(t, to=None, sms=[{"to": NUMBER}] * 1001)),
    case(Code.TO_CONTAINS_COMMAS, "node-to-with-comma", SMS,
         lambda t: sms(t, to=None, sms=[{"to": f"{NUMBER},{OTHER_NUMBER}"}])),
    case(Code.SMS_NODE_TO_EMPTY, "node-to-empty", SMS, lambda t: sms(t, to=None, sms=[{"to": ""}])),
    case(Code.SMS_NODE_TO_EMPTY, "node-to-blank", SMS, lambda t: sms(t, to=None, sms=[{"to": "   "}])),
    case(Code.SMS_NODE_TO_EMPTY, "node-to-a-number-not-text", SMS,
         lambda t: sms(t, to=None, sms=[{"to": 18135551234}])),
    case(Code.BODY_REQUIRED_IN_NODE_OR_GLOBAL, "no-body-anywhere", SMS,
         lambda t: sms(t, to=None, body=None, sms=[{"to": NUMBER}])),
    # Shapes and types
    case(Code.INVALID_INPUT, "payload-not-an-object", SMS, lambda t: [sms(t)]),
    case(Code.INVALID_INPUT, "unknown-field", SMS, lambda t: sms(t, colour="blue")),
    case(Code.INVALID_INPUT, "body-a-number", SMS, lambda t: sms(t, body=42)),
    case(Code.INVALID_INPUT, "to-a-list-of-numbers", SMS, lambda t: sms(t, to=[18135551234])),
    case(Code.INVALID_INPUT, "time-31-february", SMS, lambda t: sms(t, time="31-02-2026 10:00:00")),
    case(Code.INVALID_INPUT, "time-a-date-alone", SMS, lambda t: sms(t, time="2026-12-01")),
    case(Code.INVALID_INPUT, "time-a-number", SMS, lambda t: sms(t, time=1767225600)),
    case(Code.INVALID_INPUT, "merchant-id-too-long", SMS, lambda t: sms(t, merchantId="m" * 65)),
    case(Code.INVALID_INPUT, "email-type-unknown", EMAIL, lambda t: email(t, type="NEWSLETTER")),
    case(Code.INVALID_INPUT, "merchant-upsert-bad-id", "hexavox.merchant.upsert.v1",
         lambda t: admin(t, merchantId="bad id!", displayName="Bad")),
    case(Code.INVALID_INPUT, "consent-status-unknown", CONSENT,
         lambda t: admin(t, channel="SMS", contact=NUMBER, status="MAYBE")),
    case(Code.INVALID_INPUT, "upgrade-zero-units", UPGRADE, lambda t: upgrade(t, units=0)),
    case(Code.TO_REQUIRED, "no-to-and-no-list", SMS, lambda t: sms(t, to=None)),
    case(Code.TO_REQUIRED, "to-empty-list", SMS, lambda t: sms(t, to=[])),
    case(Code.TO_REQUIRED, "voice-without-to", VOICE, lambda t: without(voice(t), "to")),
    case(Code.TO_REQUIRED, "email-to-empty", EMAIL, lambda t: email(t, to="")),
    case(Code.BODY_EMPTY, "body-empty", SMS, lambda t: sms(t, body="")),
    case(Code.BODY_EMPTY, "body-missing", SMS, lambda t: without(sms(t), "body")),
    case(Code.BODY_EMPTY, "body-only-spaces", SMS, lambda t: sms(t, body="   ")),
    case(Code.SENDER_REQUIRED, "sender-missing", SMS, lambda t: without(sms(t), "sender")),
    case(Code.INVALID_UNICODE_FLAG, "unicode-2", SMS, lambda t: sms(t, unicode="2")),
    case(Code.INVALID_UNICODE_FLAG, "unicode-true", SMS, lambda t: sms(t, unicode=True)),
    case(Code.INVALID_FLASH_FLAG, "flash-2", SMS, lambda t: sms(t, flash=2)),
    case(Code.INVALID_FLASH_FLAG, "flash-yes", SMS, lambda t: sms(t, flash="yes")),
    case(Code.INVALID_CAMPAIGN_NAME, "campaign-name-with-space", SMS, lambda t: sms(t, campaignName="Spring sale")),
    case(Code.INVALID_CAMPAIGN_NAME, "campaign-name-33-chars", SMS, lambda t: sms(t, campaignName="c" * 33)),
    case(Code.INVALID_REF, "ref-with-dash", SMS, lambda t: sms(t, ref="ab-12")),
    case(Code.INVALID_REF1, "ref1-with-space", SMS, lambda t: sms(t, ref1="ab 12")),
    case(Code.INVALID_REF2, "ref2-a-number", SMS, lambda t: sms(t, ref2=12)),
    case(Code.INVALID_PORT, "port-with-letters", SMS, lambda t: sms(t, port="80a")),
    case(Code.INVALID_PORT, "port-true", SMS, lambda t: sms(t, port=True)),
    case(Code.INVALID_PORT, "port-past-65535", SMS, lambda t: sms(t, port=70000)),
    case(Code.INVALID_DUPLICATE_FLAG, "duplicate-2", SMS, lambda t: sms(t, duplicate=2)),
    case(Code.INVALID_DUPLICATE_FLAG, "duplicate-yes", SMS, lambda t: sms(t, duplicate="yes")),
    case(Code.CAMPAIGN_ID_REQUIRED, "campaign-id-empty", SMS, lambda t: sms(t, campaignId="")),
    case(Code.CAMPAIGN_ID_REQUIRED, "campaign-id-blank", SMS, lambda t: sms(t, campaignId="  ")),
    case(Code.TYPE_REQUIRED, "type-missing", SMS, lambda t: without(sms(t), "type")),
    case(Code.TYPE_REQUIRED, "type-blank", SMS, lambda t: sms(t, type="  ")),
    case(Code.LIST_ID_REQUIRED, "list-id-empty", SMS, lambda t: sms(t, to=None, listId="", type="MKT")),
    case(Code.LIST_SEND_NOT_OTP, "list-send-of-type-OTP", SMS, lambda t: sms(t, to=None, listId="vip", type="OTP")),
    case(Code.INVALID_TYPE, "type-PROMO", SMS, lambda t: sms(t, type="PROMO")),
    case(Code.INVALID_TYPE, "type-a-number", SMS, lambda t: sms(t, type=1)),
    case(Code.INVALID_SENDER_PATTERN, "sender-two-letters", SMS, lambda t: sms(t, sender="AB")),
    case(Code.INVALID_SENDER_PATTERN, "sender-16-digits", SMS, lambda t: sms(t, sender="1" * 16)),
    case(Code.INVALID_SENDER_PATTERN, "sender-with-space", SMS, lambda t: sms(t, sender="GYM A")),
    case(Code.NON_GSM_WITH_UNICODE_OFF, "cyrillic-with-unicode-0", SMS, lambda t: sms(t, body="Привет", unicode="0")),
    case(Code.CALLBACK_URL_REFUSED, "dlr-url-ftp", SMS, lambda t: sms(t, dlrUrl="ftp://example.com/dlr")),
    case(Code.CALLBACK_URL_REFUSED, "voice-dlr-url-javascript", VOICE,
         lambda t: voice(t, dlrUrl="javascript:alert(1)")),
    case(Code.INVALID_CHANNEL, "consent-channel-FAX", CONSENT,
         lambda t: admin(t, channel="FAX", contact=NUMBER, status="OPT_OUT")),
    case(Code.INVALID_CHANNEL, "consent-channel-missing", CONSENT,
         lambda t: admin(t, contact=NUMBER, status="OPT_OUT")),
    case(Code.INVALID_VOICE_REQUEST, "voice-text-empty", VOICE, lambda t: voice(t, text="")),
    case(Code.INVALID_VOICE_REQUEST, "voice-text-3001-chars", VOICE, lambda t: voice(t, text="a" * 3001)),
    case(Code.INVALID_VOICE_REQUEST, "voice-timeout-2s", VOICE, lambda t: voice(t, timeoutSeconds=2)),
    case(Code.INVALID_VOICE_REQUEST, "voice-record-yes", VOICE, lambda t: voice(t, record="yes")),
    case(Code.INVALID_EMAIL_CONTENT, "email-subject-empty", EMAIL, lambda t: email(t, subject="")),
    case(Code.INVALID_EMAIL_CONTENT, "email-subject-with-crlf", EMAIL,
         lambda t: email(t, subject="Hi\r\nBcc: all@example.com")),
    case(Code.INVALID_EMAIL_CONTENT, "email-subject-encoded-word", EMAIL, lambda t: email(t, subject="=?UTF-8?Q?Hi?=")),
    case(Code.INVALID_EMAIL_CONTENT, "email-body-missing", EMAIL, lambda t: without(email(t), "body")),
    # Merchant, routes and key rules (docs/contract.md 3.2)
    case(Code.TXN_ROUTE_DISABLED, "txn-route-off", SMS, lambda t: sms(t), merchant={"routes": {"TXN": False}}),
    case(Code.DEFAULT_ROUTE_DISABLED, "otp-route-off", SMS, lambda t: sms(t, type="OTP"),
         merchant={"routes": {"OTP": False}}),
    case(Code.MKT_ROUTE_DISABLED, "mkt-route-off", SMS, lambda t: sms(t, type="MKT"),
         merchant={"routes": {"MKT": False}}, before=lambda t: opt(t, "gym-a", "SMS", NUMBER)),
    case(Code.AUTHENTICATION_FAILED, "wrong-secret", SMS, lambda t: sms(t, auth={**t.auth, "secret": "wrong"})),
    case(Code.AUTHENTICATION_FAILED, "unknown-key", SMS, lambda t: sms(t, auth={**t.auth, "keyId": "hxk_nobody"})),
    case(Code.AUTHENTICATION_FAILED, "auth-missing", SMS, lambda t: without(sms(t), "auth")),
    case(Code.AUTHENTICATION_FAILED, "auth-a-string", SMS, lambda t: sms(t, auth="key:secret")),
    case(Code.AUTHENTICATION_FAILED, "admin-wrong-secret", CONSENT,
         lambda t: admin(t, auth={**t.auth, "secret": "x"}, channel="SMS", contact=NUMBER, status="OPT_IN")),
    case(Code.KEY_NOT_PERMITTED, "key-for-email-jobs-only", SMS, lambda t: sms(t), tenant={"jobs": [EMAIL]}),
    case(Code.KEY_NOT_PERMITTED, "key-for-email-channel-only", SMS, lambda t: sms(t), tenant={"channels": ["EMAIL"]}),
    case(Code.KEY_NOT_PERMITTED, "key-may-not-run-admin-job", CONSENT,
         lambda t: admin(t, channel="SMS", contact=NUMBER, status="OPT_IN"), tenant={"jobs": [SMS]}),
    case(Code.MERCHANT_NOT_FOUND, "unknown-merchant", SMS, lambda t: sms(t, merchantId="nobody")),
    case(Code.MERCHANT_NOT_FOUND, "merchant-id-missing", SMS, lambda t: without(sms(t), "merchantId")),
    case(Code.MERCHANT_NOT_FOUND, "another-tenants-merchant", SMS, lambda t: sms(make_tenant("intruder"))),
    case(Code.MERCHANT_NOT_FOUND, "admin-unknown-merchant", CONSENT,
         lambda t: admin(t, merchantId="nobody", channel="SMS", contact=NUMBER, status="OPT_IN")),
    case(Code.MERCHANT_INACTIVE, "inactive-merchant-sms", SMS, lambda t: sms(t), merchant={"active": False}),
    case(Code.MERCHANT_INACTIVE, "inactive-merchant-email", EMAIL, lambda t: email(t), merchant={"active": False}),
    # Consent, duplicates, quota, idempotency (docs/contract.md 3.3, 3.5-3.7)
    case(Code.CONSENT_OPTED_OUT, "txn-to-opted-out-number", SMS, lambda t: sms(t),
         before=lambda t: opt(t, "gym-a", "SMS", NUMBER, "OPT_OUT")),
    case(Code.CONSENT_OPTED_OUT, "otp-to-opted-out-number", SMS, lambda t: sms(t, type="OTP"),
         before=lambda t: opt(t, "gym-a", "SMS", NUMBER, "OPT_OUT")),
    case(Code.CONSENT_REQUIRED, "mkt-without-opt-in", SMS, lambda t: sms(t, type="MKT")),
    case(Code.CONSENT_REQUIRED, "mkt-with-opt-in-on-another-channel", SMS, lambda t: sms(t, type="MKT"),
         before=lambda t: opt(t, "gym-a", "VOICE", NUMBER)),
    case(Code.CONSENT_REQUIRED, "marketing-email-without-opt-in", EMAIL, lambda t: email(t, type="MARKETING")),
    case(Code.DUPLICATE_WITHIN_WINDOW, "same-sms-twice", SMS, lambda t: sms(t), before=send_first(SMS, sms)),
    case(Code.DUPLICATE_WITHIN_WINDOW, "same-email-twice", EMAIL, lambda t: email(t), before=send_first(EMAIL, email)),
    case(Code.INSUFFICIENT_BALANCE, "sms-limit-0", SMS, lambda t: sms(t), merchant={"sms": 0}),
    case(Code.INSUFFICIENT_BALANCE, "two-segments-with-one-left", SMS, lambda t: sms(t, body="b" * 161),
         merchant={"sms": 1}),
    case(Code.INSUFFICIENT_BALANCE, "voice-limit-0", VOICE, lambda t: voice(t), merchant={"voice": 0}),
    case(Code.IDEMPOTENCY_KEY_REUSED, "same-key-other-body", SMS, lambda t: sms(t, idempotencyKey="k-1", body="Other"),
         before=send_first(SMS, lambda t: sms(t, idempotencyKey="k-1"))),
    case(Code.LIST_NOT_FOUND, "unknown-list", SMS, lambda t: sms(t, to=None, listId="no-such-list", type="MKT")),
    case(Code.UNSUPPORTED_JOB, "unknown-version", "hexavox.sms.send.v2", sms),
    case(Code.UNSUPPORTED_JOB, "unknown-job", "hexavox.fax.send.v1", sms),
    # Contact-list uploads (seed 000 E638-E642, E700)
    case(Code.UPLOAD_REQUIRED, "no-content", LIST_IMPORT, lambda t: without(csv_upload(t), "contentBase64")),
    case(Code.UPLOAD_NOT_CSV, "txt-file", LIST_IMPORT, lambda t: csv_upload(t, filename="members.txt")),
    case(Code.UPLOAD_TOO_LARGE, "1-MiB-plus-one-byte", LIST_IMPORT,
         lambda t: csv_upload(t, contentBase64=base64.b64encode(b"1" * 1_048_577).decode())),
    case(Code.INVALID_SOURCE_LENGTH, "source-2-chars", LIST_IMPORT, lambda t: csv_upload(t, source="ab")),
    case(Code.INVALID_SOURCE_LENGTH, "source-missing", LIST_IMPORT, lambda t: without(csv_upload(t), "source")),
    case(Code.INVALID_SOURCE_TYPE, "source-with-digit", LIST_IMPORT, lambda t: csv_upload(t, source="web1")),
    case(Code.UPLOAD_FAILED, "not-base64", LIST_IMPORT, lambda t: csv_upload(t, contentBase64="not base64!")),
    case(Code.UPLOAD_FAILED, "binary-file", LIST_IMPORT,
         lambda t: csv_upload(t, contentBase64=base64.b64encode(b"phone\n\x00\x01\x02\n").decode())),
    case(Code.UPLOAD_FAILED, "not-utf8", LIST_IMPORT,
         lambda t: csv_upload(t, contentBase64=base64.b64encode(b"phone\n\xff\xfe\n").decode())),
    # Billing (docs/contract.md section 5)
    case(Code.BILLING_REFERENCE_REUSED, "same-reference-other-units", UPGRADE, lambda t: upgrade(t, units=50),
         before=send_first(UPGRADE, upgrade)),
    # Bounds
    case(Code.TOO_MANY_RECIPIENTS, "5000-numbers-in-to", SMS,
         lambda t: sms(t, type="MKT", to=[f"+1813555{n:04d}" for n in range(5000)])),
    case(Code.PAYLOAD_TOO_LARGE, "700-kb-body", SMS, lambda t: sms(t, body="x" * 700 * 1024)),
    case(Code.BILLING_AMOUNT_MISMATCH, "a-million-units-for-nothing", UPGRADE,
         lambda t: upgrade(t, units=1_000_000, amountCents=0)),
    case(Code.BILLING_AMOUNT_MISMATCH, "price-in-another-currency", UPGRADE, lambda t: upgrade(t, currency="EUR")),
    # Campaigns (docs/contract.md section 5)
    case(Code.CAMPAIGN_NOT_FOUND, "unknown-campaign", "hexavox.campaign.get.v1", campaign_action),
    case(Code.CAMPAIGN_STATE_CONFLICT, "resume-a-cancelled-campaign", "hexavox.campaign.resume.v1", campaign_action,
         before=cancelled_campaign),
    case(Code.CAMPAIGN_CHANNEL_UNSUPPORTED, "email-campaign-to-a-list", "hexavox.campaign.create.v1",
         lambda t: admin(t, channel="EMAIL", listId="vip", subject="Sale", body="<p>Sale</p>")),
    # 10DLC registration and its send rule; voice provisioning
    case(Code.MESSAGING_NOT_FOUND, "assign-an-unknown-number", "hexavox.messaging.number.assign.v1",
         lambda t: admin(t, number=tendlc.SENDER, campaignId=str(uuid.uuid4()))),
    case(Code.MESSAGING_STATE_CONFLICT, "campaign-before-a-verified-brand", "hexavox.messaging.campaign.create.v1",
         lambda t: admin(t, useCase="2FA", **tendlc.CAMPAIGN)),
    case(Code.TENDLC_NOT_REGISTERED, "us-sms-from-an-unassigned-10dlc-number", SMS,
         lambda t: sms(t, sender=tendlc.SENDER), before=tendlc.registered_unassigned_number),
    case(Code.TENDLC_USE_CASE_MISMATCH, "txn-from-a-2fa-campaign-number", SMS,
         lambda t: sms(t, sender=tendlc.SENDER), before=tendlc.assigned_number),
    case(Code.INVALID_MESSAGING_NUMBER, "toll-free-number", "hexavox.messaging.number.add.v1",
         lambda t: admin(t, number="+18005550100")),
    case(Code.MESSAGING_NUMBER_TAKEN, "another-merchants-number", "hexavox.messaging.number.add.v1",
         lambda t: admin(t, number=tendlc.SENDER), before=_number_of_gym_b),
    case(Code.SIP_CREDENTIAL_NOT_FOUND, "presence-of-an-unknown-agent", "hexavox.provisioning.presence.v1",
         lambda t: admin(t, username="nobody", state="AVAILABLE")),
    case(Code.SIP_USERNAME_TAKEN, "same-username-twice", "hexavox.provisioning.sip.create.v1",
         lambda t: admin(t, username="ann"), before=send_first("hexavox.provisioning.sip.create.v1",
                                                               lambda t: admin(t, username="ann"))),
)


@pytest.mark.parametrize("case", CASES)
def test_each_catalogue_code_is_answered_for_the_input_that_provokes_it(hexavox_env: dict[str, str],
                                                                       case: Case) -> None:
    # Given a tenant (with the case's key rules), its merchant gym-a and the case's own set-up
    tenant = make_tenant(**case.tenant)
    make_merchant(tenant, **case.merchant)
    if case.before is not None:
        case.before(tenant)
    # When the job is run
    answer = run_job(case.task, case.payload(tenant))
    # Then it is refused with exactly that code, for the whole request or for its only message
    assert answer["status"] == "REFUSED", answer
    assert codes_in(answer) == {case.code.value}, answer


def test_the_table_covers_every_code_the_intake_and_admin_jobs_can_raise() -> None:
    # Given the codes the table provokes
    covered = {param.values[0].code for param in CASES}
    # Then they are every catalogue code but those raised elsewhere (a new code needs a row here)
    assert covered == set(Code) - NOT_RAISED_AT_INTAKE, sorted(set(Code) - NOT_RAISED_AT_INTAKE - covered)
    assert not covered & NOT_RAISED_AT_INTAKE


# --- focused tests -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "segments"), [
    pytest.param("1" * 160, 1, id="160-gsm-characters-one-segment"),
    pytest.param("1" * 161, 2, id="161-gsm-characters-two-segments"),
    pytest.param("Код: 1234. " + "ж" * 60, 2, id="71-ucs2-characters-two-segments"),
])
def test_an_accepted_otp_is_queued_and_charged_its_segments(hexavox_env: dict[str, str], body: str,
                                                            segments: int) -> None:
    # Given a merchant with SMS units
    tenant = make_tenant()
    make_merchant(tenant)
    # When an OTP is sent
    answer = run_job(SMS, sms(tenant, type="OTP", body=body))
    # Then its one message is QUEUED with units equal to the segments, and the merchant is charged exactly that
    assert answer["status"] == "ACCEPTED", answer
    [message] = answer["messages"]
    assert message["status"] == "QUEUED"
    assert message["units"] == segments
    assert message["to"] == "+1******1234"  # masked: the answer is kept in the result backend and shown by Flower
    assert sms_used(tenant) == segments


def test_to_and_list_id_together_send_to_to_and_warn(hexavox_env: dict[str, str]) -> None:
    # Given a merchant with a contact list holding another number
    tenant = make_tenant()
    make_merchant(tenant)
    created = run_job(LIST_CREATE, admin(tenant, listId="vip", name="VIP", contacts=[OTHER_NUMBER]))
    assert created["status"] == "ACCEPTED", created
    # When a TXN send names both `to` and that list (a list send would have to be MKT)
    answer = run_job(SMS, sms(tenant, listId="vip"))
    # Then `to` is used, the list is ignored, and the answer says so
    assert answer["status"] == "ACCEPTED", answer
    assert [m["to"] for m in answer["messages"]] == ["+1******" + NUMBER[-4:]]
    assert len(answer["warnings"]) == 1
    assert "listId" in answer["warnings"][0]


def test_a_refused_message_costs_nothing(hexavox_env: dict[str, str]) -> None:
    # Given a merchant with SMS units and a number that opted out
    from schema.models import Message
    from worker.db import session_scope

    tenant = make_tenant()
    make_merchant(tenant)
    opt(tenant, "gym-a", "SMS", OTHER_NUMBER, "OPT_OUT")
    # When one send has a good number, an invalid one and the opted-out one
    answer = run_job(SMS, sms(tenant, to=[NUMBER, "+1 800 FLOWERS", OTHER_NUMBER], body="b" * 200))
    # Then only the good message is charged (2 segments); the refused ones are FINAL, free and kept with their code
    assert answer["status"] == "PARTIAL", answer
    assert [m["status"] for m in answer["messages"]] == ["QUEUED", "REFUSED", "REFUSED"]
    assert sms_used(tenant) == 2
    with session_scope() as session:
        refused = session.scalars(select(Message).where(Message.status == "REFUSED")).all()
        assert sorted(m.error_code for m in refused) == ["E406", "E805"]  # type: ignore[type-var]
        assert all(m.units == 0 and m.freshness == "FINAL" for m in refused)
    # And a send refused as a whole changes nothing either
    assert run_job(SMS, sms(tenant, to=OTHER_NUMBER, body="again"))["status"] == "REFUSED"
    assert sms_used(tenant) == 2


def test_an_idempotent_retry_returns_the_first_answer_and_creates_nothing(hexavox_env: dict[str, str]) -> None:
    # Given a send accepted under an idempotency key
    tenant = make_tenant()
    make_merchant(tenant)
    payload = sms(tenant, to=[NUMBER, OTHER_NUMBER], idempotencyKey="order-42")
    first = run_job(SMS, payload)
    assert first["status"] == "ACCEPTED", first
    messages, used = message_count(), sms_used(tenant)
    # When the same job is retried twice under new request ids, inside the duplicate window
    retries = [run_job(SMS, dict(payload)) for _ in range(2)]
    # Then each retry answers with the first answer, and no message or charge was added
    assert retries == [first, first]
    assert message_count() == messages == 2
    assert sms_used(tenant) == used == 2


@pytest.mark.parametrize("task", [
    pytest.param(LIST_CREATE, id="list-create"),
    pytest.param(LIST_IMPORT, id="list-import-csv"),
])
def test_filling_a_list_reports_how_many_contacts_were_added(hexavox_env: dict[str, str], task: str) -> None:
    # Given a merchant
    tenant = make_tenant()
    make_merchant(tenant)
    # When a list is filled with two numbers, one of them written twice
    rows = [NUMBER, OTHER_NUMBER, NUMBER]
    if task == LIST_CREATE:
        payload = admin(tenant, listId="vip", name="VIP", contacts=rows)
    else:
        payload = csv_upload(tenant, contentBase64=base64.b64encode("\n".join(["phone", *rows]).encode()).decode())
    answer = run_job(task, payload)
    # Then the answer counts the two distinct members added
    assert answer["status"] == "ACCEPTED", answer
    assert answer["result"]["added"] == 2, answer


def test_a_retry_gets_the_first_answer_after_the_merchant_was_deactivated(hexavox_env: dict[str, str]) -> None:
    # Given a send accepted under an idempotency key, and then its merchant deactivated
    tenant = make_tenant()
    make_merchant(tenant)
    payload = sms(tenant, idempotencyKey="order-43")
    first = run_job(SMS, payload)
    assert first["status"] == "ACCEPTED", first
    make_merchant(tenant, active=False)
    assert codes_in(run_job(SMS, sms(tenant, body="A new send"))) == {Code.MERCHANT_INACTIVE.value}
    # When the same job is retried
    retry = run_job(SMS, dict(payload))
    # Then it gets the first answer, not E804, and nothing was added
    assert retry == first
    assert message_count() == 1
    assert sms_used(tenant) == 1
    # And the key still refuses a different payload (E809), not E804
    assert codes_in(run_job(SMS, sms(tenant, idempotencyKey="order-43", body="Other"))) == {
        Code.IDEMPOTENCY_KEY_REUSED.value}


def test_a_retry_gets_the_first_answer_after_its_send_time_drifted_out_of_the_window(
        hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.policy.transitions import utcnow

    # Given a send scheduled 16 minutes ahead, accepted under an idempotency key
    tenant = make_tenant()
    make_merchant(tenant)
    payload = sms(tenant, time=at(dt.timedelta(minutes=16)), idempotencyKey="reminder-7")
    first = run_job(SMS, payload)
    assert first["status"] == "ACCEPTED", first
    assert [m["status"] for m in first["messages"]] == ["SCHEDULED"]
    # And the clock intake reads moved on 5 minutes: that time is now 11 minutes ahead, which a new request may not use
    later = utcnow() + dt.timedelta(minutes=5)
    monkeypatch.setattr("worker.runner.utcnow", lambda: later)
    assert codes_in(run_job(SMS, {**payload, "idempotencyKey": "reminder-8"})) == {Code.SCHEDULE_OUT_OF_WINDOW.value}
    # When the first job is retried
    retry = run_job(SMS, dict(payload))
    # Then it gets the first answer, not E402, and nothing was added
    assert retry == first
    assert message_count() == 1


@pytest.mark.parametrize(("merchant", "before", "payload", "code"), [
    pytest.param({"active": False}, None, lambda t: sms(t, type="PROMO", sender="AB"), Code.MERCHANT_INACTIVE,
                 id="merchant-activity-before-field-validation"),
    pytest.param({"routes": {"OTP": False}}, lambda t: opt(t, "gym-a", "SMS", NUMBER, "OPT_OUT"),
                 lambda t: sms(t, type="OTP", to=[NUMBER, OTHER_NUMBER]), Code.OTP_SINGLE_RECIPIENT,
                 id="recipient-count-before-route-and-consent"),
])
def test_intake_checks_in_the_order_the_readme_states(hexavox_env: dict[str, str], merchant: dict[str, Any],
                                                     before: Callable[[Tenant], None] | None,
                                                     payload: Callable[[Tenant], Any], code: Code) -> None:
    # Given a job that breaks two rules: one checked early in the actual order, one docs/contract.md numbers first
    tenant = make_tenant()
    make_merchant(tenant, **merchant)
    if before is not None:
        before(tenant)
    # When it is run
    answer = run_job(SMS, payload(tenant))
    # Then the whole request is refused with the earlier rule's code only, and no message is written
    assert answer["status"] == "REFUSED", answer
    assert answer["error"]["code"] == code.value, answer
    assert answer["messages"] == []
    assert message_count() == 0
