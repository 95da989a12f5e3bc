"""10DLC over the real stack: brand -> campaign -> number -> send with the simulated registrar, refusals included.

The HTTP API runs in-process under uvicorn; the registrar's decisions arrive by the beat task's poll (called
directly) and by its signed webhook; dispatch runs with the simulated provider, as a worker runs it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from schema.models import Message
from worker.db import session_scope

from factories import make_merchant, make_tenant
from http_api_support import client, running_api
from tendlc_support import (
    BRAND,
    CAMPAIGN,
    RECIPIENT,
    SENDER,
    assigned_number,
    poll,
    registrar_decides,
    settle,
    view,
)

MESSAGING = "/api/v1/merchants/gym-a/messaging"
WEBHOOK_SECRET = "registrar-webhook-secret"


def _otp(n: int, **fields: Any) -> dict[str, Any]:
    return {"merchantId": "gym-a", "to": RECIPIENT, "message": f"Your code is {n:06d}", "sender": SENDER,
            "type": "OTP", **fields}


def _code(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, str(answer.json().get("code", answer.json().get("status")))


def _signed(updates: list[dict[str, Any]], secret: str = WEBHOOK_SECRET) -> tuple[dict[str, str], bytes]:
    """The headers and body of one registrar webhook request, signed as the registrar signs it."""
    from providers.registrars.simulated import sign_webhook

    body, stamp = json.dumps({"updates": updates}).encode(), int(time.time())
    return {"X-Registrar-Timestamp": str(stamp), "X-Registrar-Signature": sign_webhook(secret, stamp, body)}, body


def _webhook(updates: list[dict[str, Any]], secret: str = WEBHOOK_SECRET) -> tuple[int, list[dict[str, Any]]]:
    return _deliver(*_signed(updates, secret))


def _deliver(headers: dict[str, str], body: bytes) -> tuple[int, list[dict[str, Any]]]:
    """Deliver a registrar webhook request to the receiver; the updates it enqueued are applied by the task's body."""
    from tasks.tendlc import tendlc_updates
    from worker.registrar_webhook import accept_registrar_webhook
    from worker.settings import get_settings

    queued: list[dict[str, Any]] = []
    status, _ = accept_registrar_webhook(get_settings(), headers, body, queued.extend)
    if queued:
        tendlc_updates.run(queued)
    return status, queued


def _dispatch(message_id: str) -> str:
    from worker.policy.dispatch import dispatch_message
    from worker.sending import provider_sender
    from worker.settings import get_settings

    return dispatch_message(message_id, get_settings(), provider_sender(get_settings())).value


def _message(message_id: str) -> tuple[str, str | None]:
    with session_scope() as session:
        row = session.scalars(select(Message).where(Message.id == message_id)).one()
        return row.status, row.error_code


def test_brand_campaign_number_send_lifecycle_with_rejection_and_suspension(
        hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEXAVOX_REGISTRAR_WEBHOOK_SECRET", WEBHOOK_SECRET)
    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    make_merchant(tenant, "gym-b")
    registrar_decides(monkeypatch, '{"BRAND": "UNVERIFIED", "CAMPAIGN": "REJECTED", "reasons": ["TAX_ID_MISMATCH"]}')
    with running_api(publish=lambda items: 0) as base, client(base, tenant) as http:
        # Given a brand the registry cannot verify, then registered again with corrected fields
        first = http.post(f"{MESSAGING}/brand", json=BRAND)
        assert (first.status_code, first.json()["status"], first.json()["taxId"]) == (202, "PENDING", "******6789")
        settle()
        brand = http.get(f"{MESSAGING}/status").json()["brand"]
        assert (brand["status"], brand["reasons"]) == ("UNVERIFIED", ["TAX_ID_MISMATCH"])
        assert _code(http.post(f"{MESSAGING}/campaigns", json={"useCase": "2FA", **CAMPAIGN})) == (409, "E891")
        assert http.post(f"{MESSAGING}/brand", json={**BRAND, "taxId": "98-7654321"}).status_code == 202
        registrar_decides(monkeypatch, '{"CAMPAIGN": "REJECTED", "reasons": ["SAMPLES_UNCLEAR"]}')
        settle()
        assert http.get(f"{MESSAGING}/status").json()["brand"]["status"] == "VERIFIED"
        # And a rejected campaign, then an ACTIVE 2FA one
        rejected = http.post(f"{MESSAGING}/campaigns", json={"useCase": "MARKETING", **CAMPAIGN}).json()
        settle()
        registrar_decides(monkeypatch, '{"delaySeconds": 0}')
        active = http.post(f"{MESSAGING}/campaigns", json={"useCase": "2FA", **CAMPAIGN}).json()
        assert active["status"] == "PENDING" and active["covers"] == ["OTP"]
        settle()
        campaigns = {c["campaignId"]: c for c in http.get(f"{MESSAGING}/status").json()["campaigns"]}
        assert (campaigns[rejected["campaignId"]]["status"], campaigns[rejected["campaignId"]]["reasons"]) == (
            "REJECTED", ["SAMPLES_UNCLEAR"])
        assert campaigns[active["campaignId"]]["status"] == "ACTIVE"
        # When a number is added: sends from it are refused until it is ASSIGNED to the ACTIVE campaign
        assert http.post(f"{MESSAGING}/numbers", json={"number": SENDER, "source": "BUY"}).status_code == 200
        assert _code(http.post("/api/v1/merchants/gym-b/messaging/numbers", json={"number": SENDER})) == (
            409, "E895")
        assert _code(http.post(f"{MESSAGING}/numbers", json={"number": "+18005550100"})) == (422, "E894")
        assert _code(http.post(f"{MESSAGING}/assignments", json={
            "number": "+12015550999", "campaignId": active["campaignId"]})) == (404, "E890")
        assert _code(http.post(f"{MESSAGING}/assignments", json={
            "number": SENDER, "campaignId": rejected["campaignId"]})) == (409, "E891")
        assert _code(http.post("/api/v1/messages/sms", json=_otp(1))) == (403, "E892")
        assigned = http.post(f"{MESSAGING}/assignments", json={"number": SENDER, "campaignId": active["campaignId"]})
        assert (assigned.status_code, assigned.json()["assignment"]) == (202, "PENDING")
        assert _code(http.post("/api/v1/messages/sms", json=_otp(2))) == (403, "E892")
        settle()
        numbers = http.get(f"{MESSAGING}/status").json()["numbers"]
        assert [(n["number"], n["assignment"], n["canSend"]) for n in numbers] == [(SENDER, "ASSIGNED", ["OTP"])]
        # Then OTPs go out from it, TXN does not (2FA covers OTP only); other senders and countries are unaffected
        sent = http.post("/api/v1/messages/sms", json=_otp(3))
        queued = http.post("/api/v1/messages/sms", json=_otp(4))
        assert (sent.status_code, queued.status_code) == (202, 202), sent.text
        assert _code(http.post("/api/v1/messages/sms", json=_otp(5, type="TXN"))) == (403, "E893")
        assert http.post("/api/v1/messages/sms", json=_otp(6, sender="GYMA", type="TXN")).status_code == 202
        assert http.post("/api/v1/messages/sms", json=_otp(7, to="+447911123456")).status_code == 202
        assert _dispatch(sent.json()["messageId"]) == "SENT"
        # When the registry suspends the campaign (a signed webhook; a forged one is refused)
        suspend = [{"kind": "CAMPAIGN", "id": active["campaignId"], "status": "SUSPENDED", "reasons": ["SPAM"]}]
        assert _webhook(suspend, secret="forged")[0] == 401
        assert _webhook(suspend)[0] == 202
        # Then the queued message fails at dispatch (free) and new sends are refused
        assert _dispatch(queued.json()["messageId"]) == "FAILED"
        assert _message(queued.json()["messageId"]) == ("FAILED", "E892")
        assert _code(http.post("/api/v1/messages/sms", json=_otp(8))) == (403, "E892")
        status = http.get(f"{MESSAGING}/status").json()
    assert status["numbers"][0]["canSend"] == []
    assert {c["campaignId"]: c["status"] for c in status["campaigns"]}[active["campaignId"]] == "SUSPENDED"


def test_a_campaign_suspended_while_a_batch_waits_fails_it_at_dispatch(hexavox_env: dict[str, str]) -> None:
    from worker.policy.dispatch_batch import dispatch_batch
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    campaign_id = assigned_number(tenant, "MIXED")
    accepted = run_send_job("hexavox.sms.send.v1", {"auth": tenant.auth, "merchantId": "gym-a", "to": RECIPIENT,
                                                    "body": "Class at 6", "sender": SENDER, "type": "TXN"},
                            str(uuid.uuid4()))
    message_id = accepted.result["messages"][0]["messageId"]
    assert accepted.result["status"] == "ACCEPTED", accepted.result
    with session_scope() as session:
        from providers.registrars.base import Kind, Update
        from worker.policy.tendlc import apply_update

        assert apply_update(session, Update(Kind.CAMPAIGN, campaign_id, "SUSPENDED", ("SPAM",)))
    outcome = dispatch_batch([message_id], get_settings(), provider_sender(get_settings()))
    assert outcome.steps["FAILED"] == 1
    assert _message(message_id) == ("FAILED", "E892")


def test_a_replayed_registrar_webhook_cannot_undo_a_later_decision(hexavox_env: dict[str, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_REGISTRAR_WEBHOOK_SECRET", WEBHOOK_SECRET)
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    campaign_id = assigned_number(tenant, "MIXED")
    # Given a signed request that said the campaign is ACTIVE, then a later one that suspended it
    active = _signed([{"kind": "CAMPAIGN", "id": campaign_id, "status": "ACTIVE"}])
    assert _deliver(*active)[0] == 202
    assert _webhook([{"kind": "CAMPAIGN", "id": campaign_id, "status": "SUSPENDED", "reasons": ["SPAM"]}])[0] == 202
    # When someone who captured the first request replays it inside the signature's time window
    status, queued = _deliver(*active)
    # Then it is accepted (the signature holds) but changes nothing: the campaign stays SUSPENDED
    assert status == 202 and len(queued) == 1
    with session_scope() as session:
        from schema.models import MessagingCampaign

        row = session.scalars(select(MessagingCampaign).where(MessagingCampaign.campaign_id == campaign_id)).one()
        assert (row.status, list(row.reasons)) == ("SUSPENDED", ["SPAM"])


def test_a_registrar_that_decides_later_leaves_the_brand_pending(hexavox_env: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    registrar_decides(monkeypatch, '{"delaySeconds": 3600}')
    view("hexavox.messaging.brand.register.v1", tenant, **BRAND)
    first, second = poll(), poll()
    assert (first.submitted, first.pending, second.submitted, second.pending) == (1, 1, 0, 1)
    assert view("hexavox.messaging.status.v1", tenant)["brand"]["status"] == "PENDING"


def test_the_registrar_webhook_is_served_by_the_receiver_and_queued(hexavox_env: dict[str, str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import redis

    from providers.registrars.simulated import sign_webhook
    from worker.settings import get_settings, reset_settings
    from worker.web import create_app

    monkeypatch.setenv("HEXAVOX_REGISTRAR_WEBHOOK_SECRET", WEBHOOK_SECRET)
    reset_settings()
    app = create_app(get_settings())
    body = json.dumps({"updates": [{"kind": "CAMPAIGN", "id": "c-1", "status": "SUSPENDED"}]}).encode()
    stamp = int(time.time())

    async def post(signature: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
            return await http.post("/registrar/webhook", content=body, headers={
                "X-Registrar-Timestamp": str(stamp), "X-Registrar-Signature": signature})

    forged = asyncio.run(post(sign_webhook("not-the-secret", stamp, body)))
    signed = asyncio.run(post(sign_webhook(WEBHOOK_SECRET, stamp, body)))
    assert (forged.status_code, forged.json()["code"]) == (401, "E827")
    assert (signed.status_code, signed.json()) == (202, {"accepted": 1})
    assert redis.Redis.from_url(hexavox_env["HEXAVOX_BROKER_URL"]).llen("callbacks") == 1
