"""The HTTP door in ``hexavox demo``: seed 003's quickstart against the API served in this process.

The API runs under uvicorn on a free loopback port, on the same embedded database and broker as the rest of the
demo, so the worker the demo started dispatches what it accepts. Contacts are masked in what is printed.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from worker.pii import mask_phone
from worker.settings import get_settings

__all__ = ["http_door"]


@contextmanager
def _served() -> Iterator[str]:
    from api.app import create_app, uvicorn_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = get_settings()
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _line(title: str, answer: httpx.Response) -> str:
    body: Any = answer.json()
    if isinstance(body, dict) and "code" in body:
        what = f"{body['code']} {body.get('name', '')}"
    elif isinstance(body, dict):
        what = " ".join(f"{k}={body[k]}" for k in ("merchantId", "messageId", "status", "freshnessState")
                        if body.get(k) is not None)
        if answer.headers.get("Idempotent-Replayed"):
            what += " (the first answer, replayed)"
    else:
        what = f"{len(body)} item(s)"
    return f"  HTTP {title}: {answer.status_code} {what}"


def http_door(key_id: str, secret: str, merchant_id: str, phone: str) -> list[str]:
    """Run the quickstart (merchant, consent, OTP with an Idempotency-Key and its replay, usage) and a refusal."""
    today = dt.date.today().isoformat()
    sms = {"merchantId": merchant_id, "to": phone, "message": "Your OTP is 123456", "sender": "GYMA", "type": "OTP"}
    steps: list[tuple[str, str, str, dict[str, Any] | None, dict[str, str]]] = [
        ("POST /merchants", "POST", "/api/v1/merchants", {"merchantId": merchant_id, "displayName": "Gym A",
                                                          "smsLimit": 50, "voiceMinutesLimit": 10,
                                                          "emailLimit": 100}, {}),
        ("POST /consents", "POST", "/api/v1/consents", {"merchantId": merchant_id, "channel": "SMS", "contact": phone,
                                                        "status": "OPT_IN", "source": "checkout-form"}, {}),
        ("POST /messages/sms (OTP)", "POST", "/api/v1/messages/sms", sms, {"Idempotency-Key": "demo-otp-001"}),
        ("POST /messages/sms (retried, same key)", "POST", "/api/v1/messages/sms", sms,
         {"Idempotency-Key": "demo-otp-001"}),
        ("POST /messages/sms (wrong secret)", "POST", "/api/v1/messages/sms", sms, {"X-API-SECRET": "wrong"}),
        ("GET /reports/usage", "GET", f"/api/v1/reports/usage?from={today}&to={today}", None, {}),
    ]
    lines = [f"  HTTP door: seed 003's quickstart against hexavox api (contact {mask_phone(phone)})"]
    with _served() as base_url, httpx.Client(base_url=base_url, timeout=30,
                                             headers={"X-API-KEY": key_id, "X-API-SECRET": secret}) as http:
        for title, method, path, body, headers in steps:
            lines.append(_line(title, http.request(method, path, json=body, headers=headers)))
    return lines
