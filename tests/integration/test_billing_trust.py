"""Billing cannot be self-credited: a tenant key requests units at their price, only the payment side confirms.

Before, ``billing.upgrade`` with ``amountCents=0`` followed by ``billing.confirm`` from the same tenant key
credited 1,000,000 units. Now the confirm job does not exist for tenants (E814, nothing credited), the amount is
checked against the price table, and a confirmation comes from the signed payment webhook of ``hexavox web`` or
the operator's ``hexavox billing confirm``, each crediting once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.callbacks.signing import new_secret, signature_headers

from factories import Tenant, make_merchant, make_tenant
from support import REPO

UPGRADE = "hexavox.billing.upgrade.v1"
CONFIRM = "hexavox.billing.confirm.v1"
PAYMENT_SECRET = new_secret()
HEXAVOX = Path(sys.executable).with_name("hexavox")


@pytest.fixture
def billing_env(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_PAYMENT_WEBHOOK_SECRET", PAYMENT_SECRET)
    reset_settings()
    return {**hexavox_env, "HEXAVOX_PAYMENT_WEBHOOK_SECRET": PAYMENT_SECRET}


def run(task: str, payload: dict[str, Any]) -> dict[str, Any]:
    from worker.contract import JOBS
    from worker.runner import run_admin_job_by_name, run_send_job

    request_id = str(uuid.uuid4())
    if task not in JOBS:
        return run_send_job(task, payload, request_id).result
    return run_admin_job_by_name(task, payload, request_id)


def request_units(tenant: Tenant, units: int = 25, amount: int = 25, reference: str = "ref-1") -> dict[str, Any]:
    answer = run(UPGRADE, {"auth": tenant.auth, "merchantId": "gym-a", "channel": "SMS", "units": units,
                           "amountCents": amount, "referenceId": reference})
    assert answer["status"] == "ACCEPTED", answer
    return dict(answer["result"])


def sms_credits(tenant: Tenant) -> int:
    from schema.models import Balance
    from worker.db import session_scope
    from worker.policy.merchants import load_merchant

    with session_scope() as session:
        merchant = load_merchant(session, tenant.tenant_id, "gym-a", must_be_active=False)
        return int(session.get(Balance, (merchant.id, "SMS")).credits)  # type: ignore[union-attr]


def payment_event(payment_id: str, amount: int | None, kind: str = "payment.succeeded", *,
                  secret: str = PAYMENT_SECRET, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": kind, "data": {"paymentId": payment_id, "amountCents": amount,
                                              "currency": "USD"}}).encode()
    headers = signature_headers([secret], f"evt_{uuid.uuid4().hex}", at or int(time.time()), body)
    return body, {**headers, "content-type": "application/json"}


def post_payment(body: bytes, headers: dict[str, str]) -> httpx.Response:
    from worker.settings import get_settings
    from worker.web import create_app

    app = create_app(get_settings(), enqueue=lambda *_: None)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
            return await client.post("/payments/webhook", content=body, headers=headers)
    return asyncio.run(call())


def test_a_tenant_key_cannot_confirm_its_own_payment(billing_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    request_units(tenant)
    answer = run(CONFIRM, {"auth": tenant.auth, "merchantId": "gym-a", "referenceId": "ref-1"})
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E814", answer
    assert sms_credits(tenant) == 0


def test_units_cannot_be_requested_below_their_price(billing_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    answer = run(UPGRADE, {"auth": tenant.auth, "merchantId": "gym-a", "channel": "SMS", "units": 1_000_000,
                           "amountCents": 0, "referenceId": "free"})
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E825", answer
    assert "975000 cents" in answer["error"]["detail"]  # 1,000,000 x 9,750 micro-dollars


def test_the_signed_payment_webhook_credits_the_units_once(billing_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    payment_id = request_units(tenant)["paymentId"]
    body, headers = payment_event(payment_id, 25)
    first, replayed = post_payment(body, headers), post_payment(body, headers)
    assert first.status_code == 200, first.text
    assert first.json()["paymentStatus"] == "CONFIRMED" and first.json()["remainingCredits"] == 25
    assert replayed.status_code == 200 and replayed.json() == first.json()
    assert sms_credits(tenant) == 25


@pytest.mark.parametrize("forgery", ["other-secret", "stale-timestamp", "body-altered", "unsigned"])
def test_a_forged_or_stale_payment_webhook_is_refused_and_credits_nothing(billing_env: dict[str, str],
                                                                          forgery: str) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    payment_id = request_units(tenant)["paymentId"]
    body, headers = payment_event(payment_id, 25, secret=new_secret() if forgery == "other-secret" else PAYMENT_SECRET,
                                  at=int(time.time()) - 3600 if forgery == "stale-timestamp" else None)
    if forgery == "body-altered":
        body = body.replace(b'"amountCents": 25', b'"amountCents": 26')
    if forgery == "unsigned":
        headers = {"content-type": "application/json"}
    answer = post_payment(body, headers)
    assert answer.status_code == 401 and answer.json()["code"] == "E827", answer.text
    assert sms_credits(tenant) == 0


def test_a_payment_of_the_wrong_amount_credits_nothing(billing_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    payment_id = request_units(tenant)["paymentId"]
    answer = post_payment(*payment_event(payment_id, 1))
    assert answer.status_code == 422 and answer.json()["code"] == "E825", answer.text
    assert sms_credits(tenant) == 0
    unknown = post_payment(*payment_event("pay_nope", 25))
    assert unknown.status_code == 404 and unknown.json()["code"] == "E826"


def test_a_failed_payment_credits_nothing_and_cannot_be_confirmed_later(billing_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    payment_id = request_units(tenant)["paymentId"]
    failed = post_payment(*payment_event(payment_id, None, "payment.failed"))
    assert failed.status_code == 200 and failed.json()["paymentStatus"] == "FAILED", failed.text
    later = post_payment(*payment_event(payment_id, 25))
    assert later.json()["paymentStatus"] == "FAILED" and sms_credits(tenant) == 0


def hexavox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HEXAVOX), *args], cwd=REPO, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60)


def test_the_operator_confirms_a_payment_once_at_its_price(billing_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, sms=0)
    payment_id = request_units(tenant)["paymentId"]
    wrong = hexavox(billing_env, "billing", "confirm", payment_id, "--amount-cents", "0")
    assert wrong.returncode == 1 and "E825" in wrong.stderr and sms_credits(tenant) == 0
    for _ in range(2):
        done = hexavox(billing_env, "billing", "confirm", payment_id, "--amount-cents", "25")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["paymentStatus"] == "CONFIRMED"
    assert sms_credits(tenant) == 25
