"""The HTTP API (api/) over real HTTP: uvicorn on a free port, real PostgreSQL and Redis, the real runner.

Seed 003's quickstart end to end, every other endpoint's happy path, Idempotency-Key replay and mismatch,
concurrent duplicate requests, the key's IP allowlist and request rate, and the answers' status codes.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from schema.models import Message
from worker.db import session_scope

from factories import Tenant, make_merchant, make_tenant, opt
from http_api_support import api_process, client, key_headers, running_api, set_key_rules

PHONE, OTHER = "+18135551234", "+447911123456"


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    return make_tenant()


@pytest.fixture
def api(tenant: Tenant) -> Iterator[str]:
    with running_api() as base_url:
        yield base_url


def otp(i: int = 1, **fields: Any) -> dict[str, Any]:
    return {"merchantId": "gym-a", "to": PHONE, "message": f"Your OTP is {i:06d}", "sender": "GYMA", "type": "OTP",
            **fields}


def message_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def _dispatch(message_id: str) -> None:
    from providers.registry import reset_providers
    from worker.policy.dispatch import dispatch_message
    from worker.sending import provider_sender
    from worker.settings import get_settings

    reset_providers()
    dispatch_message(message_id, get_settings(), provider_sender(get_settings()))


def test_seed_003_quickstart_end_to_end(api: str, tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    with client(api, tenant) as http:
        merchant = http.post("/api/v1/merchants", json={"merchantId": "gym-a", "displayName": "Gym A", "active": True,
                                                         "smsLimit": 5000, "voiceMinutesLimit": 1000,
                                                         "emailLimit": 25000})
        assert merchant.status_code == 200, merchant.text
        assert merchant.json()["limits"] == {"smsLimit": 5000, "voiceMinutesLimit": 1000, "emailLimit": 25000}
        assert merchant.json()["credits"] == {"smsCredits": 0, "voiceMinutesCredits": 0, "emailCredits": 0}
        consent = http.post("/api/v1/consents", json={"merchantId": "gym-a", "channel": "SMS", "contact": PHONE,
                                                      "status": "OPT_IN", "source": "checkout-form"})
        assert consent.status_code == 200, consent.text
        assert consent.json()["status"] == "OPT_IN" and consent.json()["updatedAt"].endswith("Z")
        assert consent.json()["contact"] == PHONE  # as stored (E.164), as seed 003 shows it
        sent = http.post("/api/v1/messages/sms", json=otp(), headers={"Idempotency-Key": "merchant-gym-a-otp-001"})
        assert sent.status_code == 202, sent.text
        answer = sent.json()
        assert {k: answer[k] for k in ("merchantId", "channel", "status")} == {
            "merchantId": "gym-a", "channel": "SMS", "status": "QUEUED"}
        assert sent.headers["X-Request-Id"] == answer["requestId"]
        usage = http.get("/api/v1/reports/usage", params={"from": dt.date.today().isoformat(),
                                                          "to": dt.date.today().isoformat()})
        assert usage.status_code == 200, usage.text
        assert usage.json()["totalSmsCount"] == 1 and usage.json()["freshnessState"] == "PROVISIONAL"
        queued = http.get(f"/api/v1/messages/{answer['messageId']}")
        assert queued.status_code == 200, queued.text
        assert (queued.json()["status"], queued.json()["freshnessState"]) == ("QUEUED", "PROVISIONAL")
        _dispatch(answer["messageId"])  # what the worker does with the published task
        settled = http.get(f"/api/v1/messages/{answer['messageId']}").json()
    assert settled["status"] == "SENT" and settled["units"] == 1 and settled["to"] == PHONE
    assert [(step["from"], step["to"]) for step in settled["history"]] == [("QUEUED", "DISPATCHING"),
                                                                            ("DISPATCHING", "SENT")]
    # Dispatch was published after the commit, on the OTP dispatch queue of this test's broker.
    assert redis.Redis.from_url(hexavox_env["HEXAVOX_BROKER_URL"]).llen("dispatch.otp") == 1


def test_every_other_endpoint_answers_its_seed_shape(api: str, tenant: Tenant) -> None:
    make_merchant(tenant, "gym-a")
    opt(tenant, "gym-a", "SMS", PHONE)
    csv = base64.b64encode(f"phone\n{PHONE}\n{OTHER}\n".encode()).decode()
    with client(api, tenant) as http:
        voice = http.post("/api/v1/messages/voice", json={"merchantId": "gym-a", "to": PHONE, "type": "REMINDER",
                                                          "text": "Your appointment is tomorrow at 10 AM",
                                                          "record": False, "timeoutSeconds": 30})
        assert voice.status_code == 202 and voice.json()["channel"] == "VOICE", voice.text
        email = http.post("/api/v1/messages/email", json={"merchantId": "gym-a", "to": "member@example.com",
                                                          "subject": "Payment reminder", "type": "TRANSACTIONAL",
                                                          "body": "<p>Your membership renews tomorrow.</p>"})
        assert email.status_code == 202 and email.json()["channel"] == "EMAIL", email.text
        simple = http.post("/api/v1/email/send", json={"merchantId": "gym-a", "to": "other@example.com",
                                                       "subject": "Hi", "body": "<p>x</p>"})
        assert simple.status_code == 202 and set(simple.json()) == {"requestId", "messageId", "status"}, simple.text
        several = http.post("/api/v1/messages/sms", json={"merchantId": "gym-a", "to": [PHONE, OTHER, "+1555"],
                                                          "body": "Class moved", "sender": "GYMA", "type": "TXN"})
        assert several.status_code == 202, several.text
        assert [m["status"] for m in several.json()["messages"]] == ["QUEUED", "QUEUED", "REFUSED"]
        assert several.json()["messages"][2]["error"]["code"] == "E406"
        upgrade = http.post("/api/v1/billing/upgrade", json={"merchantId": "gym-a", "channel": "SMS", "units": 2500,
                                                             "amountCents": 4900, "paymentMethodId": "pm_123",
                                                             "referenceId": "upgrade-apr-16", "currency": "USD"})
        assert upgrade.status_code == 200 and upgrade.json()["paymentStatus"] == "PENDING", upgrade.text
        assert upgrade.json()["unitsRequested"] == 2500 and upgrade.json()["fulfilled"] is False
        listed = http.post("/api/v1/lists", json={"merchantId": "gym-a", "listId": "members", "name": "Members",
                                                  "contacts": [PHONE]})
        assert listed.status_code == 200 and listed.json()["added"] == 1, listed.text
        imported = http.post("/api/v1/lists/import", json={"merchantId": "gym-a", "listId": "members",
                                                           "filename": "m.csv", "source": "upload",
                                                           "contentBase64": csv})
        assert imported.status_code == 200 and imported.json()["added"] == 1, imported.text
        bulk = http.post("/api/v1/consents/bulk", json={"merchantId": "gym-a", "consents": [
            {"channel": "SMS", "contact": OTHER, "status": "OPT_OUT"}, {"channel": "FAX", "contact": OTHER,
                                                                        "status": "OPT_IN"}]})
        assert [r["outcome"] for r in bulk.json()["results"]] == ["OK", "REFUSED"], bulk.text
        merchants = http.get("/api/v1/merchants")
        assert [m["merchantId"] for m in merchants.json()] == ["gym-a"], merchants.text
        assert "webhookSecret" not in merchants.json()[0]
        one = http.get("/api/v1/merchants/gym-a")
        assert one.status_code == 200 and one.json()["usage"]["smsUsed"] >= 2, one.text
        consents = http.get("/api/v1/consents", params={"merchantId": "gym-a", "channel": "SMS"})
        assert sorted(c["status"] for c in consents.json()) == ["OPT_IN", "OPT_OUT"], consents.text
        alerts = http.get("/api/v1/alerts", params={"merchantId": "gym-a"})
        assert alerts.status_code == 200 and isinstance(alerts.json(), list), alerts.text


def test_idempotency_key_replays_the_first_answer_and_refuses_another_payload(api: str, tenant: Tenant) -> None:
    make_merchant(tenant, "gym-a")
    with client(api, tenant) as http:
        first = http.post("/api/v1/messages/sms", json=otp(1), headers={"Idempotency-Key": "k-1"})
        again = http.post("/api/v1/messages/sms", json=otp(1), headers={"Idempotency-Key": "k-1"})
        other = http.post("/api/v1/messages/sms", json=otp(2), headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["messageId"] == first.json()["messageId"]
    assert again.json()["requestId"] == first.json()["requestId"] != again.headers["X-Request-Id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409 and other.json()["code"] == "E809", other.text
    assert message_count() == 1


def test_idempotency_key_on_admin_writes_replays_and_refuses_another_payload(api: str, tenant: Tenant) -> None:
    upgrade = {"merchantId": "gym-a", "channel": "SMS", "units": 100, "amountCents": 500, "referenceId": "r-1"}
    make_merchant(tenant, "gym-a")
    with client(api, tenant) as http:
        first = http.post("/api/v1/billing/upgrade", json=upgrade, headers={"Idempotency-Key": "up-1"})
        again = http.post("/api/v1/billing/upgrade", json=upgrade, headers={"Idempotency-Key": "up-1"})
        other = http.post("/api/v1/merchants", json={"merchantId": "gym-b", "displayName": "B"},
                          headers={"Idempotency-Key": "up-1"})
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert other.status_code == 409 and other.json()["code"] == "E809", other.text


def test_concurrent_duplicate_requests_create_one_message(api: str, tenant: Tenant) -> None:
    make_merchant(tenant, "gym-a")

    def send(i: int) -> httpx.Response:
        with client(api, tenant) as http:
            return http.post("/api/v1/messages/sms", json=otp(7), headers={"Idempotency-Key": "race"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["messageId"] for a in answers}) == 1
    assert message_count() == 1

    def same_content(i: int) -> httpx.Response:  # no key: the 10-second duplicate guard lets one through
        with client(api, tenant) as http:
            return http.post("/api/v1/messages/sms", json=otp(8))

    with ThreadPoolExecutor(6) as pool:
        racing = list(pool.map(same_content, range(6)))
    assert sorted(a.status_code for a in racing) == [202] + [409] * 5, [a.text for a in racing]
    assert {a.json()["code"] for a in racing if a.status_code == 409} == {"E807"}


def test_ip_allowlist_refuses_other_addresses_with_e840(api: str, tenant: Tenant) -> None:
    make_merchant(tenant, "gym-a")
    set_key_rules(tenant, allowed_cidrs=["10.0.0.0/8", "2001:db8::/32"])
    with client(api, tenant) as http:
        refused = http.get("/api/v1/merchants")
        refused_send = http.post("/api/v1/messages/sms", json=otp())
        set_key_rules(tenant, allowed_cidrs=["10.0.0.0/8", "127.0.0.0/8"])
        allowed = http.get("/api/v1/merchants")
    assert refused.status_code == refused_send.status_code == 403
    assert refused.json()["code"] == refused_send.json()["code"] == "E840"
    assert allowed.status_code == 200, allowed.text
    assert message_count() == 0


def test_ip_allowlist_matches_the_client_behind_a_trusted_proxy(tenant: Tenant) -> None:
    from dataclasses import replace

    from worker.settings import get_settings

    make_merchant(tenant, "gym-a")
    set_key_rules(tenant, allowed_cidrs=["203.0.113.0/24"])
    with running_api(replace(get_settings(), api_trusted_proxies="127.0.0.1")) as base, client(base, tenant) as http:
        behind = http.get("/api/v1/merchants", headers={"X-Forwarded-For": "203.0.113.7"})
        elsewhere = http.get("/api/v1/merchants", headers={"X-Forwarded-For": "198.51.100.1"})
    with running_api() as base, client(base, tenant) as http:  # untrusted: the header is not believed
        spoofed = http.get("/api/v1/merchants", headers={"X-Forwarded-For": "203.0.113.7"})
    assert behind.status_code == 200, behind.text
    assert elsewhere.status_code == spoofed.status_code == 403


def test_key_rate_limit_is_429_with_retry_after_and_shared_by_api_processes(api: str, tenant: Tenant,
                                                                           hexavox_env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    make_merchant(tenant, "gym-a")
    set_key_rules(tenant, rate_limit_per_minute=3)
    with client(api, tenant) as http:
        statuses = [http.get("/api/v1/merchants").status_code for _ in range(2)]
    with api_process(hexavox_env, tmp_path / "api.log") as second, client(second, tenant) as other:
        statuses.append(other.get("/api/v1/merchants").status_code)
        limited = other.post("/api/v1/messages/sms", json=otp())
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429 and limited.json()["code"] == "E843", limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert message_count() == 0


def _sms(n: int, **fields: Any) -> dict[str, Any]:
    """A TXN SMS with its own body (so the duplicate guard never joins two cases)."""
    return {"merchantId": "gym-a", "to": PHONE, "message": f"Refusal case {n}", "sender": "GYMA", "type": "TXN",
            **fields}


_SOON = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).isoformat()
_CSV = {"merchantId": "gym-a", "listId": "up", "filename": "m.csv", "source": "upload"}
_VOICE = {"merchantId": "gym-a", "to": PHONE, "text": "Hello", "type": "TXN"}
_EMAIL = {"merchantId": "gym-a", "to": "member@example.com", "subject": "Hi", "body": "<p>x</p>"}
_SMS_PATH, _VOICE_PATH, _EMAIL_PATH = "/api/v1/messages/sms", "/api/v1/messages/voice", "/api/v1/messages/email"

#: (code, HTTP status, method, path, JSON body or query, extra headers): every refusal a tenant can reach over HTTP.
REFUSALS: list[tuple[str, int, str, str, Any, dict[str, str]]] = [
    ("E801", 401, "POST", _SMS_PATH, _sms(1), {"X-API-SECRET": "wrong"}),
    ("E801", 401, "POST", _SMS_PATH, _sms(2, auth={"keyId": "k", "secret": "s"}), {}),
    ("E802", 403, "POST", _VOICE_PATH, _VOICE, {"use": "sms-only-key"}),
    ("E803", 404, "POST", _SMS_PATH, _sms(3, merchantId="nobody"), {}),
    ("E803", 404, "GET", "/api/v1/merchants/nobody", None, {}),
    ("E804", 403, "POST", _SMS_PATH, _sms(4, merchantId="gym-off"), {}),
    ("E805", 403, "POST", _SMS_PATH, _sms(5, to=OTHER), {}),
    ("E806", 403, "POST", _SMS_PATH, _sms(6, type="MKT"), {}),
    ("E807", 409, "POST", _SMS_PATH, _sms(0), {}),  # the same as the warm-up send just before the table
    ("E808", 402, "POST", _SMS_PATH, _sms(8, merchantId="gym-empty"), {}),
    ("E625", 403, "POST", _SMS_PATH, _sms(9, merchantId="gym-nomkt", type="MKT"), {}),
    ("E623", 403, "POST", _SMS_PATH, _sms(41, merchantId="gym-nomkt"), {}),
    ("E624", 403, "POST", _SMS_PATH, _sms(42, merchantId="gym-nomkt", type="OTP"), {}),
    ("E802", 403, "POST", _SMS_PATH, _sms(43, merchantId="gym-nomkt"), {"use": "gym-a-only-key"}),
    ("E613", 422, "POST", _SMS_PATH, _sms(44, to=None, listId="", type="MKT"), {}),
    ("E824", 403, "POST", _SMS_PATH, _sms(10, merchantId="gym-us", to="+447911123457"), {}),
    ("E810", 422, "POST", _SMS_PATH, _sms(11, to="+19002752000"), {}),
    ("E406", 422, "POST", _SMS_PATH, _sms(12, to="+1555"), {}),
    ("E404", 422, "POST", _SMS_PATH, _sms(13, type="OTP", to=[PHONE, "+18135551235"]), {}),
    ("E405", 422, "POST", _SMS_PATH, _sms(14, to=[f"+1813555{i:04d}" for i in range(101)]), {}),
    ("E400", 422, "POST", _SMS_PATH, _sms(15, to=None, listId="members"), {}),
    ("E614", 422, "POST", _SMS_PATH, _sms(16, to=None, listId="members", type="OTP"), {}),
    ("E813", 404, "POST", _SMS_PATH, _sms(17, to=None, listId="none", type="MKT"), {}),
    ("E880", 404, "GET", "/api/v1/campaigns/no-such-campaign", {"merchantId": "gym-a"}, {}),
    ("E883", 422, "POST", "/api/v1/campaigns", {"merchantId": "gym-a", "channel": "EMAIL", "listId": "members",
                                                "subject": "Sale", "body": "<p>Sale</p>"}, {}),
    ("E600", 422, "POST", _SMS_PATH, _sms(18, to=None), {}),
    ("E601", 422, "POST", _SMS_PATH, _sms(19, message=" "), {}),
    ("E602", 422, "POST", _SMS_PATH, _sms(20, sender=None), {}),
    ("E619", 422, "POST", _SMS_PATH, _sms(21, sender="G!"), {}),
    ("E611", 422, "POST", _SMS_PATH, _sms(22, type=None), {}),
    ("E615", 422, "POST", _SMS_PATH, _sms(23, type="PROMO"), {}),
    ("E604", 422, "POST", _SMS_PATH, _sms(24, unicode="2"), {}),
    ("E606", 422, "POST", _SMS_PATH, _sms(25, flash="yes"), {}),
    ("E607", 422, "POST", _SMS_PATH, _sms(26, campaignName="no spaces allowed"), {}),
    ("E608", 422, "POST", _SMS_PATH, _sms(27, ref="a-b"), {}),
    ("E603", 422, "POST", _SMS_PATH, _sms(70, port="80a"), {}),
    ("E605", 422, "POST", _SMS_PATH, _sms(71, duplicate=2), {}),
    ("E609", 422, "POST", _SMS_PATH, _sms(72, ref1="ab 12"), {}),
    ("E610", 422, "POST", _SMS_PATH, _sms(73, ref2=12), {}),
    ("E617", 422, "POST", _SMS_PATH, _sms(74, campaignId=" "), {}),
    ("E402", 422, "POST", _SMS_PATH, _sms(28, time=_SOON), {}),
    ("E401", 422, "POST", _SMS_PATH, _sms(29, message="x" * 1600), {}),
    ("E812", 422, "POST", _SMS_PATH, _sms(30, message="Привет", unicode=0), {}),
    ("E819", 422, "POST", _SMS_PATH, _sms(31, dlrUrl="ftp://example.com/x"), {}),
    ("E407", 422, "POST", _SMS_PATH, _sms(32, to=None, sms=[]), {}),
    ("E408", 422, "POST", _SMS_PATH, _sms(33, to=None, sms=[{"body": "x"}]), {}),
    ("E410", 422, "POST", _SMS_PATH, _sms(34, to=None, sms=[{"to": f"{PHONE},{OTHER}"}]), {}),
    ("E411", 422, "POST", _SMS_PATH, _sms(35, to=None, sms=[{"to": " "}]), {}),
    ("E412", 422, "POST", _SMS_PATH, _sms(36, to=None, message=None, sms=[{"to": PHONE}]), {}),
    ("E413", 422, "POST", _SMS_PATH, _sms(37, colour="blue"), {}),
    ("E413", 422, "POST", _SMS_PATH, _sms(38, message="a", body="b"), {}),
    ("E413", 422, "POST", _SMS_PATH, b"{not json", {}),
    ("E413", 422, "POST", _SMS_PATH, [1, 2], {}),
    ("E413", 422, "POST", _SMS_PATH, _sms(39), {"Idempotency-Key": "x" * 256}),
    ("E413", 422, "GET", "/api/v1/merchants", {"limit": "0"}, {}),
    ("E413", 422, "GET", "/api/v1/reports/usage", {"from": "yesterday", "to": "2026-01-01"}, {}),
    ("E828", 413, "POST", _SMS_PATH, _sms(40, type="MKT", to=[PHONE] * 1001), {}),
    ("E844", 415, "POST", _SMS_PATH, "merchantId=gym-a", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("E845", 404, "GET", "/api/v1/messages/no-such-message", None, {}),
    ("E814", 404, "GET", "/api/v1/nothing-here", None, {}),
    ("E814", 405, "DELETE", "/api/v1/merchants", None, {}),
    ("E822", 422, "POST", _VOICE_PATH, {**_VOICE, "timeoutSeconds": 500}, {}),
    ("E823", 422, "POST", _EMAIL_PATH, {**_EMAIL, "subject": "Hi\r\nBcc: all@example.com"}, {}),
    ("E811", 422, "POST", _EMAIL_PATH, {**_EMAIL, "to": "not-an-email"}, {}),
    ("E821", 422, "POST", "/api/v1/consents", {"merchantId": "gym-a", "channel": "FAX", "contact": PHONE,
                                               "status": "OPT_IN"}, {}),
    ("E820", 409, "POST", "/api/v1/billing/upgrade", {"merchantId": "gym-a", "channel": "SMS", "units": 1,
                                                      "amountCents": 1, "referenceId": "ref-1"}, {}),
    ("E638", 422, "POST", "/api/v1/lists/import", {**_CSV, "contentBase64": ""}, {}),
    ("E639", 422, "POST", "/api/v1/lists/import", {**_CSV, "filename": "m.pdf",
                                                   "contentBase64": base64.b64encode(b"phone\n").decode()}, {}),
    ("E641", 422, "POST", "/api/v1/lists/import", {**_CSV, "source": "ab",
                                                   "contentBase64": base64.b64encode(b"phone\n").decode()}, {}),
    ("E642", 422, "POST", "/api/v1/lists/import", {**_CSV, "source": "abc123",
                                                   "contentBase64": base64.b64encode(b"phone\n").decode()}, {}),
    ("E700", 422, "POST", "/api/v1/lists/import", {**_CSV, "contentBase64": "%%%"}, {}),
    ("E825", 422, "POST", "/api/v1/billing/upgrade", {"merchantId": "gym-a", "channel": "SMS", "units": 2500,
                                                      "amountCents": 100, "referenceId": "cheap"}, {}),
    ("E829", 413, "POST", _SMS_PATH, _sms(75, message="x" * 700_000), {}),
    ("E640", 413, "POST", "/api/v1/lists/import", {**_CSV, "contentBase64": base64.b64encode(
        b"phone\n" + b"+18135551234\n" * 82_000).decode()}, {}),
]
#: Codes with a test of their own here (key rules, rate, body size, Idempotency-Key): E809, E840, E841, E843.
#: Codes no HTTP request can draw: E100/E101 (not refusals), E103 (internal errors only), E409 (more than 1,000
#: sms nodes is E828 first at the default HTTP_API_MAX_RECIPIENTS), E815-E818 (dispatch outcomes, read with
#: GET /messages/{id}), E875/E876 (the broker's envelope and body checks), E826/E827 (the payment and provider
#: webhooks of `hexavox web`, tested in test_billing_trust and test_webhook_trust).
NOT_IN_TABLE = {"E809", "E840", "E841", "E843", "E100", "E101", "E103", "E409", "E815", "E816", "E817", "E818",
                "E875", "E876", "E826", "E827",
                "E881", "E882",  # campaign state conflicts and cancelled recipients: test_http_api_campaigns
                # 10DLC and voice provisioning (each needs a registration set up first): test_tendlc and
                # test_voice_provisioning draw each over HTTP and check its status
                "E890", "E891", "E892", "E893", "E894", "E895", "E896", "E897"}


def test_the_refusal_table_covers_every_catalogue_code() -> None:
    from worker.catalogue import CATALOGUE

    assert {code.value for code in CATALOGUE} - NOT_IN_TABLE == {row[0] for row in REFUSALS}


def _call(http: httpx.Client, method: str, path: str, data: Any, headers: dict[str, str]) -> httpx.Response:
    if method == "GET":
        return http.get(path, params=data, headers=headers)
    if isinstance(data, bytes | str):
        return http.request(method, path, content=data,
                            headers={"Content-Type": "application/json", **headers})
    return http.request(method, path, json=data, headers=headers) if data is not None else http.request(
        method, path, headers=headers)


def test_every_refusal_reachable_over_http_has_its_code_and_status(api: str, tenant: Tenant) -> None:
    make_merchant(tenant, "gym-a")
    make_merchant(tenant, "gym-off", active=False)
    make_merchant(tenant, "gym-empty", sms=0)
    make_merchant(tenant, "gym-nomkt", routes={"MKT": False, "TXN": False, "OTP": False})
    make_merchant(tenant, "gym-us", allowedCountries=["US"])
    opt(tenant, "gym-a", "SMS", OTHER, "OPT_OUT")
    sms_only = make_tenant("acme", channels=["SMS"])  # a second key of the same tenant, SMS only
    gym_a_only = make_tenant("acme")
    set_key_rules(gym_a_only, allowed_merchants=["gym-a"])
    keys = {"sms-only-key": sms_only, "gym-a-only-key": gym_a_only}
    mismatches = []
    with client(api, tenant) as http:
        http.post("/api/v1/lists", json={"merchantId": "gym-a", "listId": "members", "name": "M", "contacts": [PHONE]})
        http.post("/api/v1/billing/upgrade", json={"merchantId": "gym-a", "channel": "SMS", "units": 2,
                                                   "amountCents": 2, "referenceId": "ref-1"})
        assert http.post(_SMS_PATH, json=_sms(0)).status_code == 202
        for code, status, method, path, data, extra in REFUSALS:
            headers = dict(extra)
            if "use" in headers:
                headers.update(key_headers(keys[headers.pop("use")]))
            answer = _call(http, method, path, data, headers)
            body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
            if (answer.status_code, body.get("code")) != (status, code) or not body.get("detail"):
                mismatches.append((code, status, path, answer.status_code, answer.text[:200]))
    assert not mismatches, "\n".join(map(str, mismatches))


def test_oversize_body_is_413_before_it_is_parsed(tenant: Tenant) -> None:
    from dataclasses import replace

    from worker.settings import get_settings

    with running_api(replace(get_settings(), api_max_body_bytes=2048)) as base, client(base, tenant) as http:
        big = http.post(_SMS_PATH, json=_sms(1, message="x" * 4096))
        streamed = http.post(_SMS_PATH, content=iter([b'{"merchantId": "', b"x" * 4096, b'"}']),
                             headers={"Content-Type": "application/json"})
    assert big.status_code == streamed.status_code == 413
    assert big.json()["code"] == streamed.json()["code"] == "E841"
    assert message_count() == 0


def test_logs_never_carry_the_secret_a_contact_or_a_body(api: str, tenant: Tenant,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    make_merchant(tenant, "gym-a")
    caplog.set_level("DEBUG")
    with client(api, tenant) as http:
        assert http.post(_SMS_PATH, json=otp(424242)).status_code == 202
        assert http.post(_SMS_PATH, json=otp(424242)).status_code == 409
        assert http.get("/api/v1/consents", params={"merchantId": "gym-a"}).status_code == 200
        assert http.post(_SMS_PATH, json=otp(424243), headers={"X-API-SECRET": "wrong-secret"}).status_code == 401
        assert http.get("/api/v1/merchants", headers={"X-API-KEY": tenant.secret}).status_code == 401  # pasted
    text = caplog.text
    assert "POST /api/v1/messages/sms -> 202" in text and "-> 401" in text  # the API does log each request
    assert f"key {tenant.key_id}" in text
    for secret_or_pii in (tenant.secret, "wrong-secret", PHONE, PHONE[1:], "424242", "Your OTP"):
        assert secret_or_pii not in text


def test_parameters_postgresql_cannot_compare_are_e413_not_a_server_error(api: str, tenant: Tenant) -> None:
    """Found by the schemathesis run: a NUL in a query parameter reached a query and was answered 503."""
    make_merchant(tenant, "gym-a")
    with client(api, tenant) as http:
        answers = [http.get("/api/v1/consents", params={"merchantId": "gym\x00a"}),
                   http.get("/api/v1/merchants/gym%00a"), http.get("/api/v1/messages/x%00y")]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(422, "E413")] * 3


def test_both_doors_run_one_policy_and_share_idempotency_keys(api: str, tenant: Tenant) -> None:
    """The queue's runner and the HTTP door answer the same payload with the same code, and an Idempotency-Key
    used on the queue is the same key over HTTP (one message, the first answer)."""
    from worker.policy.auth import by_secret
    from worker.runner import run_send_job

    make_merchant(tenant, "gym-a")
    opt(tenant, "gym-a", "SMS", OTHER, "OPT_OUT")
    refused = [_sms(60, type="OTP", to=[PHONE, OTHER]), _sms(61, sender=None), _sms(62, to=OTHER),
               _sms(63, merchantId="nobody"), _sms(64, time="31-12-1999 10:00:00")]
    with client(api, tenant) as http:
        for n, payload in enumerate(refused):
            queue_payload = {k: v for k, v in payload.items() if k != "message"} | {"body": f"Queue case {n}"}
            http_payload = {**payload, "message": f"HTTP case {n}"}
            queued = run_send_job("hexavox.sms.send.v1", queue_payload, f"queue-{n}", by_secret(tenant.key_id,
                                                                                                   tenant.secret))
            queue_code = (queued.result.get("error") or queued.result["messages"][0]["error"])["code"]
            assert http.post(_SMS_PATH, json=http_payload).json()["code"] == queue_code, payload
        body = otp(5)
        first = run_send_job("hexavox.sms.send.v1", {**{k: v for k, v in body.items() if k != "message"},
                                                     "body": body["message"], "idempotencyKey": "both-doors"},
                             "queue-first", by_secret(tenant.key_id, tenant.secret))
        again = http.post(_SMS_PATH, json=body, headers={"Idempotency-Key": "both-doors"})
    assert again.status_code == 202 and again.json()["requestId"] == "queue-first"
    assert again.json()["messageId"] == first.result["messages"][0]["messageId"]
    with session_scope() as session:  # the refused sends above left only their recorded (free) E805 messages
        accepted = session.scalar(select(func.count()).where(Message.status != "REFUSED"))
    assert accepted == 1


def test_metrics_count_api_requests_for_the_scraper(api: str, tenant: Tenant) -> None:
    """deploy/k8s/base/api.yaml scrapes /metrics on the API's port."""
    with client(api, tenant) as http:
        assert http.get("/api/v1/merchants").status_code == 200
        metrics = http.get("/metrics")
    assert metrics.status_code == 200 and 'app="api"' in metrics.text
