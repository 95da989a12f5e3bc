"""Voice provisioning over HTTP: SIP credentials with a secret shown once, presence, browser-calling tokens.

Secrets must never rest where someone with read access finds them: not in a log line, not in a stored answer
(``requests.result``, which the result backend and Flower show too), not in an answer after the creating one.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from sqlalchemy import select, text

from schema.models import Request, SipCredential
from worker.db import session_scope

from factories import make_merchant, make_tenant, opt
from http_api_support import client, running_api

PROVISIONING = "/api/v1/voice/provisioning"


def test_sip_credentials_presence_and_browser_tokens_without_leaking_secrets(
        hexavox_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    from worker.policy.sip import verify_browser_token, verify_secret
    from worker.runner import run_admin_job_by_name

    caplog.set_level(logging.DEBUG)
    tenant = make_tenant()
    merchant_pk = make_merchant(tenant, "gym-a")
    with running_api() as base, client(base, tenant) as http:
        # When an agent's credentials are created, the answer shows the generated secret
        body = {"merchantId": "gym-a", "username": "ann.front-desk", "transport": "TLS"}
        created = http.post(f"{PROVISIONING}/sip-credentials", json=body, headers={"Idempotency-Key": "sip-1"})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert len(secret) >= 24 and created.json()["presence"] == "OFFLINE"
        # Then a retry of the same request is answered without it, and so is every later read
        again = http.post(f"{PROVISIONING}/sip-credentials", json=body, headers={"Idempotency-Key": "sip-1"})
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        assert "secret" not in again.json()
        taken = http.post(f"{PROVISIONING}/sip-credentials", json=body)
        assert (taken.status_code, taken.json()["code"]) == (409, "E897")
        # When the agent posts presence, the provisioning read shows it and a voice send may ring the agent
        assert available_agent_of(merchant_pk) is None
        presence = http.post(f"{PROVISIONING}/presence", json={"merchantId": "gym-a", "username": "ann.front-desk",
                                                                 "state": "AVAILABLE"})
        assert (presence.status_code, presence.json()["presence"]) == (200, "AVAILABLE"), presence.text
        unknown = http.post(f"{PROVISIONING}/presence", json={"merchantId": "gym-a", "username": "nobody",
                                                                "state": "BUSY"})
        assert (unknown.status_code, unknown.json()["code"]) == (404, "E896")
        shown = http.get(PROVISIONING, params={"merchantId": "gym-a"})
        assert shown.status_code == 200, shown.text
        assert [(a["username"], a["presence"]) for a in shown.json()["agents"]] == [("ann.front-desk", "AVAILABLE")]
        assert available_agent_of(merchant_pk) == "sip:ann.front-desk@sip.hexavox.local"
        # And a browser token is short-lived and signed: tampering or expiry makes it worthless
        minted = http.get(f"{PROVISIONING}/browser-token", params={"merchantId": "gym-a",
                                                                   "username": "ann.front-desk"})
        assert minted.status_code == 200, minted.text
        token = minted.json()["token"]
        claims = verify_browser_token(token)
        assert claims is not None and claims["sub"] == "ann.front-desk@sip.hexavox.local"
        assert verify_browser_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
        assert verify_browser_token(token, now=claims["exp"] + 1) is None
        answers = [created.text, again.text, presence.text, shown.text]
    # The queue door's answer never carries the secret
    queued = run_admin_job_by_name("hexavox.provisioning.sip.create.v1", {
        "auth": tenant.auth, "merchantId": "gym-a", "username": "bob.backoffice"}, str(uuid.uuid4()))
    assert queued["status"] == "ACCEPTED" and "secret" not in queued["result"]
    with session_scope() as session:
        assert verify_secret(session, "ann.front-desk", secret)
        assert not verify_secret(session, "ann.front-desk", secret[:-1] + "x")
        stored = json.dumps([row for row in session.scalars(select(Request.result))])
        credential = session.scalars(select(SipCredential).where(SipCredential.username == "ann.front-desk")).one()
        row_text = json.dumps([credential.secret_salt, credential.secret_sha256])
        dump = session.execute(text("SELECT string_agg(t::text, ' ') FROM sip_credentials t")).scalar_one()
    for place, content in (("logs", caplog.text), ("stored answers", stored), ("credential row", row_text),
                           ("table", dump), ("later answers", " ".join(answers[1:]))):
        assert secret not in content, place
        assert token not in content, place
    assert "ann.front-desk" in stored  # the scan did read the stored answers


def available_agent_of(merchant_pk: int) -> str | None:
    from worker.policy.sip import available_agent

    with session_scope() as session:
        return available_agent(session, merchant_pk)


def test_a_reminder_call_asking_for_an_agent_rings_one_available_now(hexavox_env: dict[str, str]) -> None:
    from providers.base import OutboundMessage, SendResult
    from worker.policy.dispatch import dispatch_message
    from worker.runner import run_admin_job_by_name, run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    opt(tenant, "gym-a", "VOICE", "+18135550002")  # marketing calls need the callee's OPT_IN
    settings, seen = get_settings(), []
    real = provider_sender(settings)

    def recording(message: OutboundMessage, providers: list[str]) -> SendResult:
        seen.append(dict(message.options))
        return real(message, providers)

    def call(n: int, kind: str = "REMINDER") -> str:
        answer = run_send_job("hexavox.voice.send.v1", {
            "auth": tenant.auth, "merchantId": "gym-a", "to": f"+1813555{n:04d}", "text": "Class at 10",
            "type": kind, "ringAgent": True}, str(uuid.uuid4())).result
        assert answer["status"] == "ACCEPTED", answer
        return str(answer["messages"][0]["messageId"])

    def presence(state: str) -> None:
        answer = run_admin_job_by_name("hexavox.provisioning.presence.v1", {
            "auth": tenant.auth, "merchantId": "gym-a", "username": "ann", "state": state}, str(uuid.uuid4()))
        assert answer["status"] == "ACCEPTED", answer

    assert run_admin_job_by_name("hexavox.provisioning.sip.create.v1", {
        "auth": tenant.auth, "merchantId": "gym-a", "username": "ann"}, str(uuid.uuid4()))["status"] == "ACCEPTED"
    # Given the agent is AVAILABLE, a REMINDER call asking for an agent is connected to it (the simulator can)
    presence("AVAILABLE")
    for message_id in (call(1), call(2, "MKT")):
        assert dispatch_message(message_id, settings, recording).value == "SENT"
    # And once the agent is BUSY, no agent is named
    presence("BUSY")
    assert dispatch_message(call(3), settings, recording).value == "SENT"
    assert [options.get("agentSip") for options in seen] == ["sip:ann@sip.hexavox.local", None, None]
    assert "ringAgent" not in seen[1]  # MKT calls are never connected to an agent
