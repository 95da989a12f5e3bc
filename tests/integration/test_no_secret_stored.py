"""Nothing secret or personal is kept where it does not belong: failed statements and stored answers.

* A database error's text is what reaches logs and Sentry; with ``hide_parameters`` it names the statement but
  not the bound values (message bodies, numbers, secrets).
* A request's answer is stored twice (``requests.result`` and the result backend) where anyone with read access to
  either finds it; the merchant upsert answer used to carry the merchant's ``whsec_`` dlrUrl signing secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from schema.models import Merchant, Request
from worker.db import engine, session_scope
from worker.policy.merchants import secret_fingerprint

from factories import make_merchant, make_tenant
from support import REPO

SECRET_BODY = "Your OTP is 482913, sent to +18135551234"


def test_a_failed_statement_does_not_carry_its_bound_values(hexavox_env: dict[str, str]) -> None:
    with pytest.raises(DBAPIError) as raised, engine().connect() as conn:
        conn.execute(text("SELECT length(:body) / 0"), {"body": SECRET_BODY})
    assert "482913" not in str(raised.value) and "8135551234" not in str(raised.value)
    assert "division by zero" in str(raised.value) and "SELECT length" in str(raised.value)  # still says what


def test_a_merchant_upsert_answer_is_stored_without_the_webhook_secret(hexavox_env: dict[str, str]) -> None:
    from worker.runner import run_admin_job_by_name

    tenant = make_tenant()
    request_id = str(uuid.uuid4())
    answer = run_admin_job_by_name("hexavox.merchant.upsert.v1", {
        "auth": tenant.auth, "merchantId": "gym-a", "displayName": "Gym", "smsLimit": 10}, request_id)
    assert answer["status"] == "ACCEPTED", answer
    with session_scope() as session:
        stored = session.scalars(select(Request.result).where(Request.id == request_id)).one()
    for kept in (answer, stored):
        assert "whsec_" not in json.dumps(kept)
    assert answer["result"]["webhookSecretFingerprint"].startswith("sha256:")


def test_the_operator_reads_the_secret_the_answer_only_names(hexavox_env: dict[str, str]) -> None:
    merchant_pk = make_merchant(make_tenant())
    with session_scope() as session:
        stored = session.get(Merchant, merchant_pk).webhook_secrets[-1]  # type: ignore[union-attr]
    shown = subprocess.run([str(Path(sys.executable).with_name("hexavox")), "merchant", "show-webhook-secret", "gym-a"],
                           cwd=REPO, env={**os.environ, **hexavox_env}, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"merchantId": "gym-a", "webhookSecret": stored,
                                        "webhookSecretFingerprint": secret_fingerprint(stored)}
