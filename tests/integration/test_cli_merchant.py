"""`hexavox merchant rotate-webhook-secret`: the operator's entry to Standard Webhooks key rotation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from schema.models import Merchant
from worker.db import session_scope

from factories import make_merchant, make_tenant
from support import REPO

HEXAVOX = Path(sys.executable).with_name("hexavox")


def rotate(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HEXAVOX), "merchant", "rotate-webhook-secret", "gym-a", *extra], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def secrets_of(merchant_pk: int) -> list[str]:
    with session_scope() as session:
        merchant = session.get(Merchant, merchant_pk)
        assert merchant is not None
        return list(merchant.webhook_secrets)


def test_rotation_adds_a_signing_secret_and_revocation_keeps_only_the_new_one(hexavox_env: dict[str, str]) -> None:
    # Given a merchant with its first signing secret
    tenant = make_tenant()
    merchant_pk = make_merchant(tenant)
    [first] = secrets_of(merchant_pk)

    # When an operator rotates it, Then old and new both sign (a receiver with the old one still verifies)
    rotated = rotate(hexavox_env)
    assert rotated.returncode == 0, rotated.stderr
    second = json.loads(rotated.stdout)["webhookSecret"]
    assert secrets_of(merchant_pk) == [first, second] and second != first

    # When it is rotated again with --keep 1, Then only the newest signs: the others are revoked
    revoked = rotate(hexavox_env, "--keep", "1")
    assert revoked.returncode == 0, revoked.stderr
    third = json.loads(revoked.stdout)["webhookSecret"]
    assert secrets_of(merchant_pk) == [third] and third not in (first, second)


def test_rotation_of_an_unknown_merchant_exits_1_with_its_code(hexavox_env: dict[str, str]) -> None:
    make_tenant()
    done = rotate(hexavox_env)
    assert done.returncode == 1 and "E803" in done.stderr and done.stdout == ""
