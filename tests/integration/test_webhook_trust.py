"""Inbound delivery reports are authenticated and replay-proof, and only touch what their provider sent.

Before: a captured report could be replayed at any time (the signature covered the body only), a replayed STOP
opted a contact out again after they had opted back in, and a report posted to any provider's endpoint could
settle a message whose provider was not recorded yet.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from providers.base import DeliveryEvent, DeliveryStatus
from providers.simulated import sign_callback
from schema.models import Consent, Message
from worker.db import session_scope
from worker.policy.delivery_reports import apply_batch, events_to_json

from factories import make_merchant, make_tenant, opt, sms

SECRET = "whsec-test-0123456789abcdef0123456789"
NUMBER = "+18135551234"
OUR_NUMBER = "+18135550000"


@pytest.fixture
def signed_env(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps({"simulated": {"driver": "simulated",
                                                                      "callback_secret": SECRET}}))
    reset_settings()
    reset_providers()


def post(body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, list[list[dict[str, Any]]]]:
    from worker.settings import get_settings
    from worker.web import create_app

    published: list[list[dict[str, Any]]] = []
    app = create_app(get_settings(), enqueue=lambda _name, events: published.append(events))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
            return await client.post("/webhooks/simulated", content=body, headers=headers)
    return asyncio.run(call()), published


def sent(tenant: Any, **fields: Any) -> Message:
    from worker.policy.dispatch import dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    row = run_send_job("hexavox.sms.send.v1", sms(tenant, **fields), str(uuid.uuid4())).result["messages"][0]
    dispatch_message(row["messageId"], get_settings(), provider_sender(get_settings()))
    return message(row["messageId"])


def message(message_id: str) -> Message:
    with session_scope() as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


def consent(merchant_pk: int) -> str | None:
    from sqlalchemy import select

    with session_scope() as session:
        return session.scalars(select(Consent.status).where(Consent.merchant_id == merchant_pk,
                                                            Consent.contact == NUMBER)).first()


def test_a_stale_signed_report_is_refused(signed_env: None) -> None:
    body = json.dumps({"ref": "sim-1", "status": "DELIVERED", "eventId": "e-1"}).encode()
    fresh, published = post(body, {**sign_callback(SECRET, body), "content-type": "application/json"})
    assert fresh.status_code == 202 and len(published) == 1
    old = sign_callback(SECRET, body, timestamp=int(time.time()) - 3600)
    stale, published = post(body, {**old, "content-type": "application/json"})
    assert stale.status_code == 401 and stale.json()["code"] == "E827" and published == []
    redated = {**old, "X-Webhook-Timestamp": str(int(time.time()))}  # the time is signed too
    assert post(body, redated)[0].status_code == 401


def test_a_replayed_stop_changes_nothing_after_the_contact_opted_back_in(signed_env: None) -> None:
    tenant = make_tenant()
    merchant_pk = make_merchant(tenant)
    sent(tenant, sender=OUR_NUMBER)
    body = json.dumps({"type": "reply", "from": NUMBER, "to": OUR_NUMBER, "text": "STOP"}).encode()
    headers = {**sign_callback(SECRET, body), "content-type": "application/json"}
    answer, [events] = post(body, headers)
    assert answer.status_code == 202 and events[0]["eventId"]  # named after the signed delivery id
    assert apply_batch("simulated", events) == {"opted-out": 1}
    assert consent(merchant_pk) == "OPT_OUT"
    opt(tenant, "gym-a", "SMS", NUMBER, "OPT_IN")  # the contact opts back in
    _, [replayed] = post(body, headers)  # the same capture, inside the time window
    assert apply_batch("simulated", replayed) == {"replayed": 1}
    assert consent(merchant_pk) == "OPT_IN"


def test_a_report_on_another_providers_endpoint_cannot_settle_a_message(signed_env: None) -> None:
    from schema.states import MessageState
    from worker.policy.transitions import transition

    tenant = make_tenant()
    make_merchant(tenant)
    from worker.runner import run_send_job

    row = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4())).result["messages"][0]
    with session_scope() as session:  # dispatch has claimed it; no provider recorded yet
        assert transition(session, row["messageId"], [MessageState.QUEUED], MessageState.DISPATCHING)
    forged = DeliveryEvent(provider="rogue", status=DeliveryStatus.DELIVERED, message_id=row["messageId"])
    assert apply_batch("rogue", events_to_json([forged])) == {"unknown-message": 1}
    assert message(row["messageId"]).status == "DISPATCHING"
    genuine = DeliveryEvent(provider="simulated", status=DeliveryStatus.DELIVERED, message_id=row["messageId"])
    assert apply_batch("simulated", events_to_json([genuine])) == {"delivered": 1}  # its route's provider may
