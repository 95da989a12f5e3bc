"""Smoke test of the installed `hexavox status` command, run as a subprocess against the test's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from factories import make_merchant, make_tenant, sms
from support import REPO

HEXAVOX = Path(sys.executable).with_name("hexavox")  # the console script installed next to this interpreter


def _status(env: dict[str, str], request_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HEXAVOX), "status", request_id], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_status_prints_the_stored_answer_of_a_request(hexavox_env: dict[str, str]) -> None:
    from worker.runner import run_send_job

    # Given a request accepted in this test (one SMS) and one refused as a whole (OTP to two numbers)
    tenant = make_tenant()
    make_merchant(tenant)
    accepted_id, refused_id = str(uuid.uuid4()), str(uuid.uuid4())
    accepted = run_send_job("hexavox.sms.send.v1", sms(tenant), accepted_id).result
    refused = run_send_job("hexavox.sms.send.v1", sms(tenant, type="OTP", to=["+18135551234", "+18135551235"]),
                           refused_id).result
    assert (accepted["status"], refused["status"]) == ("ACCEPTED", "REFUSED")
    # When `hexavox status` is run for each, in another process with the test's settings
    shown = {}
    for request_id in (accepted_id, refused_id):
        done = _status(hexavox_env, request_id)
        assert done.returncode == 0, done.stdout + done.stderr
        shown[request_id] = json.loads(done.stdout)
    # Then it prints the answer the sender got, and each message's current state
    assert shown[accepted_id]["answer"] == accepted
    assert shown[accepted_id]["status"] == "ACCEPTED"
    [message] = shown[accepted_id]["messages"]
    assert (message["messageId"], message["status"], message["type"]) == (
        accepted["messages"][0]["messageId"], "QUEUED", "TXN")
    assert shown[refused_id]["answer"] == refused
    assert shown[refused_id]["answer"]["error"]["code"] == "E404"
    assert shown[refused_id]["messages"] == []


def test_status_of_an_unknown_request_fails(hexavox_env: dict[str, str]) -> None:
    # When `hexavox status` is asked for an id no request has, Then it says so and exits 1
    request_id = str(uuid.uuid4())
    done = _status(hexavox_env, request_id)
    assert done.returncode == 1
    assert done.stdout.strip() == f"unknown request {request_id}"
