"""`hexavox tenant create` with key rules: the key it prints may use only the channels and jobs named."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import Tenant, make_merchant, sms

SMS = "hexavox.sms.send.v1"
VOICE = "hexavox.voice.send.v1"
EMAIL = "hexavox.email.send.v1"


def _create(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Tenant, dict[str, Any]]:
    """Run the command in this process (settings point at the test database) and read the key it printed."""
    from worker.cli import main

    assert main(["tenant", "create", "acme", *args]) == 0
    printed = json.loads(capsys.readouterr().out)
    return Tenant(printed["tenantId"], printed["keyId"], printed["secret"]), printed


def _stored_rules(key_id: str) -> tuple[list[str], list[str]]:
    from schema.models import ApiKey
    from worker.db import session_scope

    with session_scope() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one()
        return list(key.allowed_channels), list(key.allowed_jobs)


def _send(task: str, payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    return run_send_job(task, payload, str(uuid.uuid4())).result


def _email(tenant: Tenant) -> dict[str, Any]:
    return {"auth": tenant.auth, "merchantId": "gym-a", "to": "member@example.com", "subject": "Class moved",
            "body": "<p>6 pm</p>"}


def _voice(tenant: Tenant) -> dict[str, Any]:
    return {"auth": tenant.auth, "merchantId": "gym-a", "to": "+18135551234", "text": "Your class moved to 6 pm"}


def test_a_key_created_with_rules_may_use_only_those_channels_and_jobs(
        hexavox_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Given a key created for SMS and voice channels (written in any case) and for the SMS and email jobs
    tenant, printed = _create(capsys, "--channels", "sms,VOICE", "--jobs", f"{SMS},{EMAIL}")
    make_merchant(tenant)
    # Then the rules are stored under the names the key check matches, and printed with the key
    assert _stored_rules(tenant.key_id) == (["SMS", "VOICE"], [SMS, EMAIL])
    assert (printed["channels"], printed["jobs"]) == (["SMS", "VOICE"], [SMS, EMAIL])
    # When it sends an SMS (job and channel allowed), a voice call (job not allowed) and an email (channel not allowed)
    answers = {task: _send(task, payload) for task, payload in
               [(SMS, sms(tenant)), (VOICE, _voice(tenant)), (EMAIL, _email(tenant))]}
    # Then only the SMS is accepted; the others are refused E802 naming what the key lacks
    assert answers[SMS]["status"] == "ACCEPTED", answers[SMS]
    assert answers[VOICE]["error"]["code"] == "E802" and VOICE in answers[VOICE]["error"]["detail"]
    assert answers[EMAIL]["error"]["code"] == "E802" and "EMAIL" in answers[EMAIL]["error"]["detail"]


def test_a_key_created_without_rules_may_use_everything(hexavox_env: dict[str, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a key created with neither flag
    tenant, printed = _create(capsys)
    make_merchant(tenant)
    # Then it is stored with "*" for both, and may send on every channel
    assert _stored_rules(tenant.key_id) == (["*"], ["*"])
    assert (printed["channels"], printed["jobs"]) == (["*"], ["*"])
    assert [_send(task, payload)["status"] for task, payload in
            [(SMS, sms(tenant)), (VOICE, _voice(tenant)), (EMAIL, _email(tenant))]] == ["ACCEPTED"] * 3


@pytest.mark.parametrize("args", [
    pytest.param(["--channels", "SMS,FAX"], id="unknown-channel"),
    pytest.param(["--jobs", "sms.send"], id="job-not-a-task-name"),
    pytest.param(["--jobs", ","], id="empty-rule"),
])
def test_an_unknown_rule_name_is_refused_and_no_key_is_created(
        hexavox_env: dict[str, str], capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    from schema.models import ApiKey
    from worker.cli import main
    from worker.db import session_scope

    # When a key is asked for with a name the key check would never match
    with pytest.raises(SystemExit) as exit_info:
        main(["tenant", "create", "acme", *args])
    # Then the command fails with a usage error that lists the valid names, and nothing is stored
    assert exit_info.value.code == 2
    assert "use * or some of:" in capsys.readouterr().err
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 0
