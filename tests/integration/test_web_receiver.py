"""The webhook receiver (worker/web.py): a signed simulated-provider callback is answered 202 at once and a real
worker applies it; a wrong signature is 401 and enqueues nothing; unknown providers 404; oversize bodies 413.

The end-to-end case runs the app under uvicorn on a free 127.0.0.1 port and publishes to the real broker; the
others call it in-process through ``httpx.ASGITransport`` with a recording ``enqueue`` (what would have been
published), since a stray worker left by another test session on a shared Redis could drain a real queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette

from providers.simulated import sign_callback
from schema.models import Consent, Message
from worker.db import session_scope

from factories import Tenant, make_merchant, make_tenant, sms

SECRET = "whsec-test-0123456789abcdef0123456789"
NUMBER = "+18135551234"
SMS_TASK = "hexavox.sms.send.v1"


@pytest.fixture
def signed_env(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The simulated provider with a callback secret (set before any worker starts, so it inherits it too)."""
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    providers = json.dumps({"simulated": {"driver": "simulated", "callback_secret": SECRET}})
    monkeypatch.setenv("HEXAVOX_PROVIDERS", providers)
    reset_settings()
    reset_providers()
    return {**hexavox_env, "HEXAVOX_PROVIDERS": providers}


class Recorder:
    """Stands in for the broker: every (provider, events) the receiver would have published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, list[dict[str, Any]]]] = []

    def __call__(self, provider: str, events: list[dict[str, Any]]) -> None:
        self.published.append((provider, events))


def web_app(enqueue: Recorder | None = None) -> Starlette:
    from worker.settings import get_settings
    from worker.web import create_app

    return create_app(get_settings(), enqueue=enqueue)


def post(app: Starlette, path: str, body: Any = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    """One request to the app in-process; ``body`` may be bytes or an async iterator (sent chunked)."""
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
            return await client.post(path, content=body, headers=headers or {})
    return asyncio.run(call())


def signed(payload: Any, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {**sign_callback(secret, body), "content-type": "application/json"}


def sent_message(tenant: Tenant, **fields: Any) -> tuple[str, str]:
    """A real SMS through intake and dispatch (simulated provider): its id and provider reference."""
    from worker.policy.dispatch import dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    row = run_send_job(SMS_TASK, sms(tenant, **fields), str(uuid.uuid4())).result["messages"][0]
    dispatch_message(row["messageId"], get_settings(), provider_sender(get_settings()))
    with session_scope() as session:
        found = session.get(Message, row["messageId"])
        assert found is not None and found.status == "SENT" and found.provider_ref
        return found.id, found.provider_ref


def dlr(ref: str, mid: str, status: str = "DELIVERED") -> dict[str, Any]:
    return {"ref": ref, "messageId": mid, "status": status, "eventId": f"{ref}-{status}",
            "at": dt.datetime.now(dt.UTC).isoformat()}


def wait_for(check: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


# --- end to end: uvicorn + a real worker --------------------------------------------------------------------------


@pytest.fixture
def served(signed_env: dict[str, str]) -> Iterator[str]:
    """The receiver under uvicorn on a free loopback port; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, 10), "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_signed_callback_is_applied_by_the_worker(signed_env: dict[str, str], served: str,
                                                  request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("celery_worker")  # started after signed_env, so it shares the configuration
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    mid, ref = sent_message(tenant, sender="+18135550000")
    body, headers = signed([dlr(ref, mid), dlr(ref, mid, "SENT"),  # a late SENT in the same batch
                            {"type": "reply", "from": NUMBER, "to": "18135550000", "text": "Stop", "eventId": "in-1"}])

    started = time.monotonic()
    answer = httpx.post(f"{served}/webhooks/simulated", content=body, headers=headers, timeout=10)
    answered_in = time.monotonic() - started
    assert answer.status_code == 202 and answer.json() == {"accepted": 3}, answer.text
    assert answered_in < 2.0

    def settled() -> bool:
        with session_scope() as session:
            found = session.get(Message, mid)
            consent = session.scalars(select(Consent.status).where(Consent.merchant_id == merchant_id)).first()
            return found is not None and found.status == "DELIVERED" and consent == "OPT_OUT"

    assert wait_for(settled, 20), "the worker did not apply the reports within 20 s"
    assert httpx.get(f"{served}/healthz", timeout=5).status_code == 200


# --- in-process: answers and what reaches the broker ---------------------------------------------------------------


def test_wrong_signature_is_401_and_enqueues_nothing(signed_env: dict[str, str]) -> None:
    broker = Recorder()
    app = web_app(broker)
    body, headers = signed(dlr("sim-x", str(uuid.uuid4())), secret="not-the-secret-0123456789")
    answer = post(app, "/webhooks/simulated", body, headers)
    assert answer.status_code == 401 and answer.json() == {"code": "E827", "name": "WEBHOOK_NOT_AUTHENTIC"}
    assert post(app, "/webhooks/simulated", body).status_code == 401  # no signature at all
    flipped = body.replace(b"DELIVERED", b"DELIVERES")
    assert post(app, "/webhooks/simulated", flipped, {**signed(dlr("sim-x", "m"))[1]}).status_code == 401
    assert broker.published == []

    mid = str(uuid.uuid4())  # the positive control: a good signature is published, as JSON, for its provider
    body, headers = signed(dlr("sim-x", mid))
    assert post(app, "/webhooks/simulated", body, headers).status_code == 202
    [(provider, events)] = broker.published
    assert provider == "simulated" and len(events) == 1
    assert (events[0]["status"], events[0]["providerRef"], events[0]["messageId"]) == ("DELIVERED", "sim-x", mid)
    assert json.loads(json.dumps(events)) == events


def test_unknown_provider_malformed_and_empty_bodies(signed_env: dict[str, str]) -> None:
    broker = Recorder()
    app = web_app(broker)
    assert post(app, "/webhooks/nobody", b"{}").status_code == 404
    assert post(app, "/webhooks/simulated%00", b"{}").status_code == 404
    body = b"{not json"
    answer = post(app, "/webhooks/simulated", body, sign_callback(SECRET, body))
    assert answer.status_code == 400 and answer.json()["code"] == "E413"
    assert "not json" not in answer.text  # nothing of the body is echoed back
    body, headers = signed([])
    assert post(app, "/webhooks/simulated", body, headers).json() == {"accepted": 0}
    assert broker.published == []
    health = asyncio.run(_get(app, "/healthz"))
    assert health.status_code == 200 and health.json() == {"ok": True}


async def _get(app: Starlette, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
        return await client.get(path)


def test_oversize_bodies_are_413(signed_env: dict[str, str]) -> None:
    from worker.web import MAX_BODY_BYTES

    broker = Recorder()
    app = web_app(broker)
    big = b"[" + b" " * MAX_BODY_BYTES + b"]"
    headers = sign_callback(SECRET, big)
    assert post(app, "/webhooks/simulated", big, headers).status_code == 413  # declared Content-Length

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b" " * 4096

    assert post(app, "/webhooks/simulated", chunks(), headers).status_code == 413
    just_fits = b"[" + b" " * (MAX_BODY_BYTES - 2) + b"]"
    assert post(app, "/webhooks/simulated", just_fits,
                sign_callback(SECRET, just_fits)).json() == {"accepted": 0}
    assert broker.published == []


def test_broker_down_is_503_so_the_provider_retries(signed_env: dict[str, str]) -> None:
    from worker.settings import get_settings
    from worker.web import create_app

    def broken(_provider: str, _events: list[dict[str, Any]]) -> None:
        raise ConnectionError("broker unreachable")

    body, headers = signed(dlr("sim-x", str(uuid.uuid4())))
    answer = post(create_app(get_settings(), enqueue=broken), "/webhooks/simulated", body, headers)
    assert answer.status_code == 503


def test_cli_web_subcommand_runs_the_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.web
    from worker.cli import main

    calls: list[tuple[str, int]] = []

    def serve(host: str, port: int) -> int:
        calls.append((host, port))
        return 0

    monkeypatch.setattr(worker.web, "serve", serve)
    assert main(["web"]) == 0 and main(["web", "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert calls == [("127.0.0.1", 8080), ("0.0.0.0", 9000)]
