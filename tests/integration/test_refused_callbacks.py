"""A message refused at intake is FINAL at once, so a job with a dlrUrl gets its callback (issue 12, item 8)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from schema.models import OutboundCallback
from worker.db import session_scope

from factories import make_merchant, make_tenant, sms

DLR_URL = "https://merchant.example.com/dlr"


def _send(payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    return run_send_job("hexavox.sms.send.v1", payload, str(uuid.uuid4())).result


def _callbacks() -> dict[str, dict[str, Any]]:
    """Callback rows by message id: the event status, the URL and the body that will be signed."""
    with session_scope() as session:
        rows = session.scalars(select(OutboundCallback)).all()
        return {row.message_id: {"status": row.event_status, "url": row.url, "state": row.state,
                                 "body": json.loads(row.body)} for row in rows}


def test_each_message_refused_at_intake_gets_a_final_callback(hexavox_env: dict[str, str]) -> None:
    """A bad number (refused before policy) and an exhausted quota (refused inside the savepoint) both call back."""
    tenant = make_tenant()
    make_merchant(tenant, sms=1)

    answer = _send(sms(tenant, to=["+18135551234", "+1 800 FLOWERS", "+18135551235"], dlrUrl=DLR_URL))

    rows = {row["to"]: row for row in answer["messages"]}
    refused = {row["messageId"]: row["error"]["code"] for row in rows.values() if row["status"] == "REFUSED"}
    assert sorted(refused.values()) == ["E406", "E808"], answer
    callbacks = _callbacks()
    assert set(callbacks) == set(refused)  # the accepted message is not FINAL yet: no callback for it
    for message_id, code in refused.items():
        callback = callbacks[message_id]
        assert (callback["status"], callback["url"], callback["state"]) == ("REFUSED", DLR_URL, "PENDING")
        assert callback["body"] | {"at": None} == {
            "type": "message.final", "messageId": message_id, "requestId": answer["requestId"],
            "status": "REFUSED", "freshness": "FINAL", "errorCode": code, "units": 0, "at": None}


def test_a_refused_message_without_dlr_url_queues_nothing(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)

    answer = _send(sms(tenant, to="+1 800 FLOWERS"))

    assert answer["messages"][0]["status"] == "REFUSED"
    assert _callbacks() == {}
