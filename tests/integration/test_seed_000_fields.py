"""Seed 000's optional SMS parameters (issue 12, item 7): accepted, kept on the message, and ``duplicate``'s effect
on the 10-second guard."""

from __future__ import annotations

import uuid
from typing import Any

from schema.models import Message
from worker.db import session_scope
from worker.policy.duplicates import WAIVE_RULE

from factories import Tenant, make_merchant, make_tenant, sms

SMS = "hexavox.sms.send.v1"


def _send(payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    return run_send_job(SMS, payload, str(uuid.uuid4())).result


def _options(message_id: str) -> dict[str, Any]:
    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return dict(message.options)


def test_port_refs_and_campaign_id_are_accepted_and_kept(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)

    answer = _send(sms(tenant, port="5000", ref="a1", ref1="branch2", ref2="desk9", campaignId="spring-26",
                       duplicate=0))

    assert answer["status"] == "ACCEPTED", answer
    options = _options(answer["messages"][0]["messageId"])
    assert {k: options[k] for k in ("port", "ref", "ref1", "ref2", "campaignId", "duplicate")} == {
        "port": 5000, "ref": "a1", "ref1": "branch2", "ref2": "desk9", "campaignId": "spring-26", "duplicate": False}


def _twice(tenant: Tenant, **fields: Any) -> list[dict[str, Any]]:
    return [_send(sms(tenant, body="Class moved to 7 pm", **fields)) for _ in range(2)]


def test_duplicate_1_without_the_key_rule_changes_nothing_and_says_so(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()  # jobs "*": the waiver is never implied
    make_merchant(tenant)

    first, second = _twice(tenant, duplicate=1)

    assert first["status"] == "ACCEPTED"
    assert second["messages"][0]["error"]["code"] == "E807"
    assert any("hexavox.sms.duplicate" in warning for warning in second["warnings"])
    assert _options(first["messages"][0]["messageId"])["duplicate"] is False  # the provider is not told either


def test_duplicate_1_with_the_key_rule_sends_the_repeat_and_the_guard_still_holds_after(
        hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant(jobs=[SMS, WAIVE_RULE])
    make_merchant(tenant)

    first, second = _twice(tenant, duplicate="1")
    third = _send(sms(tenant, body="Class moved to 7 pm"))

    assert [first["status"], second["status"]] == ["ACCEPTED", "ACCEPTED"], second
    assert second["warnings"] == []
    assert _options(second["messages"][0]["messageId"])["duplicate"] is True  # the driver sends duplicate=1
    assert third["messages"][0]["error"]["code"] == "E807"  # an ordinary repeat inside the window is refused


def test_the_merchants_tags_come_back_in_its_callback(hexavox_env: dict[str, str]) -> None:
    import json

    from sqlalchemy import select

    from schema.models import OutboundCallback

    tenant = make_tenant()
    make_merchant(tenant)

    _send(sms(tenant, to="+1 800 FLOWERS", dlrUrl="https://merchant.example.com/dlr", ref="a1", ref2="desk9",
              campaignId="spring-26"))

    with session_scope() as session:
        [body] = session.scalars(select(OutboundCallback.body)).all()
    assert json.loads(body)["tags"] == {"ref": "a1", "ref2": "desk9", "campaignId": "spring-26"}
