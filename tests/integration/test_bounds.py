"""Bounds on what one job or one report may make us do: recipients, payload size, absurd numbers, callback URLs.

Before: 5,000 recipients in one MKT ``to`` took 12 s in one transaction and wrote a 1.1 MB answer; a voice report
with ``durationSeconds: "1e400"`` crashed the receiver (500, retried forever); a ``dlrUrl`` on a loopback, private
or metadata address, or on any port, was accepted at intake and only failed, silently, at callback time.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from schema.models import Message
from worker.db import session_scope

from factories import make_merchant, make_tenant, opt, sms

SMS = "hexavox.sms.send.v1"


def send(payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    return run_send_job(SMS, payload, str(uuid.uuid4())).result


def messages() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.fixture
def strict_callbacks(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Production's callback rules (the suite's default lets callbacks reach test servers on loopback)."""
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_ALLOW_PRIVATE_CALLBACKS", "0")
    reset_settings()


def test_five_thousand_recipients_in_one_to_are_refused_at_once(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=10_000)
    numbers = [f"+1813555{n:04d}" for n in range(5000)]
    started = time.perf_counter()
    answer = send(sms(tenant, to=numbers, type="MKT"))
    elapsed = time.perf_counter() - started
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E828", str(answer)[:300]
    assert elapsed < 3.0 and messages() == 0
    assert len(json.dumps(answer)) < 2_000


def test_recipients_up_to_the_cap_are_still_taken(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    numbers = ["+18135551234", "+18135551235"]
    for number in numbers:
        opt(tenant, "gym-a", "SMS", number)
    answer = send(sms(tenant, to=numbers, type="MKT"))
    assert answer["status"] == "ACCEPTED", answer


def test_an_oversized_send_job_is_refused_before_it_is_read(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    answer = send(sms(tenant, body="x" * (700 * 1024)))
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E829", str(answer)[:300]
    assert messages() == 0


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/dlr", "http://169.254.169.254/latest/meta-data", "http://10.0.0.7/dlr", "http://[::1]/dlr",
    "http://2130706433/dlr", "http://0x7f.1/dlr", "http://[::ffff:127.0.0.1]/dlr", "https://user@example.com/dlr",
    "https://example.com:6379/dlr", "ftp://example.com/dlr",
])
def test_a_dlr_url_that_can_never_be_called_is_refused_at_intake(strict_callbacks: None, url: str) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    answer = send(sms(tenant, dlrUrl=url))
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E819", answer
    assert messages() == 0


@pytest.mark.parametrize("url", ["https://hooks.example.com/dlr", "http://hooks.example.com:80/dlr"])
def test_a_public_dlr_url_on_80_or_443_is_taken(strict_callbacks: None, url: str) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    assert send(sms(tenant, dlrUrl=url))["status"] == "ACCEPTED"


def test_the_callback_ports_are_configurable(strict_callbacks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.callbacks.egress import resolve_public
    from worker.errors import ValidationError

    def resolver(_host: str, _port: int) -> list[str]:
        return ["93.184.216.34"]

    with pytest.raises(ValidationError):
        resolve_public("https://example.com:8443/dlr", resolver=resolver)
    target = resolve_public("https://example.com:8443/dlr", resolver=resolver, allowed_ports={443, 8443})
    assert target.port == 8443


@pytest.mark.parametrize("duration", ["1e400", 1e308, "inf", "NaN", 10**30, -5, "soon"])
def test_an_absurd_call_duration_is_unreadable_not_a_crash(hexavox_env: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch, duration: Any) -> None:
    from providers.registry import reset_providers
    from worker.settings import get_settings, reset_settings
    from worker.web import create_app

    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps({"voice": {"driver": "http_voice",
                                                                  "base_url": "http://127.0.0.1:9",
                                                                  "api_key": "k", "caller_id": "+4930123456"}}))
    reset_settings()
    reset_providers()
    published: list[Any] = []
    app = create_app(get_settings(), enqueue=lambda name, events: published.append(events))
    body = json.dumps({"callId": "call-1", "clientRef": str(uuid.uuid4()), "status": "completed",
                       "durationSeconds": duration, "eventId": "ev-1"}).encode()

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
            return await client.post("/webhooks/voice", content=body, headers={"content-type": "application/json"})
    answer = asyncio.run(call())
    assert answer.status_code == 202, answer.text
    [[event]] = published
    assert event["durationSeconds"] is None
