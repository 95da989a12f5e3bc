"""Alerts: usage thresholds written once each as a merchant uses up its limit, and the reconcile backlog
alert written at most once per hour, read back through the list function and the alerts job."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from schema.states import MessageState
from worker.catalogue import Code
from worker.errors import Refusal

from factories import Tenant, make_merchant, make_tenant

SMS_TASK = "hexavox.sms.send.v1"
ALERTS_TASK = "hexavox.alerts.list.v1"


def send_sms(tenant: Tenant, to: str, merchant: str = "gym-a") -> dict[str, Any]:
    """One single-segment TXN SMS through the real intake; the row of the answer for its one recipient."""
    from worker.runner import run_send_job

    payload = {"auth": tenant.auth, "merchantId": merchant, "to": to, "body": "Class moved to 6 pm",
               "sender": "GYMA", "type": "TXN"}
    row: dict[str, Any] = run_send_job(SMS_TASK, payload, str(uuid.uuid4())).result["messages"][0]
    return row


def alerts(tenant: Tenant, merchant: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    from worker.db import session_scope
    from worker.policy.alerts import list_alerts

    with session_scope() as session:
        return list_alerts(session, tenant.tenant_id, merchant, **kw)


def backlog(max_age_seconds: int, now: dt.datetime) -> int:
    from worker.db import session_scope
    from worker.policy.alerts import check_reconcile_backlog

    with session_scope() as session:
        return check_reconcile_backlog(session, max_age_seconds=max_age_seconds, now=now)


def test_usage_alerts_at_80_and_100_percent_appear_exactly_once_each(hexavox_env: dict[str, str]) -> None:
    # Given a merchant with an SMS limit of 10
    tenant = make_tenant()
    make_merchant(tenant, sms=10)
    # When it sends 10 single-segment messages to different numbers, and an 11th that no longer fits
    rows = [send_sms(tenant, f"+1813555{1000 + i}") for i in range(10)]
    assert [row["status"] for row in rows] == ["QUEUED"] * 10
    assert send_sms(tenant, "+18135552000")["error"]["code"] == Code.INSUFFICIENT_BALANCE.value
    # Then exactly one alert per threshold, newest first
    found = alerts(tenant)
    assert [a["kind"] for a in found] == ["USAGE_100", "USAGE_80"]
    assert [(a["detail"]["used"], a["detail"]["limit"]) for a in found] == [(10, 10), (8, 10)]
    assert {a["merchantId"] for a in found} == {"gym-a"}
    assert alerts(tenant, "gym-a", limit=1) == found[:1]
    # And the alerts job answers the same list
    from worker.runner import run_admin_job_by_name

    answer = run_admin_job_by_name(ALERTS_TASK, {"auth": tenant.auth}, str(uuid.uuid4()))
    assert answer["status"] == "ACCEPTED", answer
    assert answer["result"] == {"alerts": found}


def test_another_tenant_sees_none_of_these_alerts(hexavox_env: dict[str, str]) -> None:
    tenant, other = make_tenant("acme"), make_tenant("other")
    make_merchant(tenant, sms=1)
    send_sms(tenant, "+18135551000")
    assert len(alerts(tenant)) == 2  # one unit of one crosses 80 % and 100 % at once
    assert alerts(other) == []
    with pytest.raises(Refusal) as refused:
        alerts(other, "gym-a")
    assert refused.value.code == Code.MERCHANT_NOT_FOUND


def test_reconcile_backlog_alert_is_written_once_per_hour(hexavox_env: dict[str, str]) -> None:
    from worker.db import session_scope
    from worker.policy.alerts import ALL_SYSTEM_KINDS
    from worker.policy.transitions import transition

    # Given one AMBIGUOUS message
    tenant = make_tenant()
    make_merchant(tenant)
    message_id = send_sms(tenant, "+18135551000")["messageId"]
    with session_scope() as session:
        assert transition(session, message_id, [MessageState.QUEUED], MessageState.DISPATCHING)
        assert transition(session, message_id, [MessageState.DISPATCHING], MessageState.AMBIGUOUS)
    hour = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).replace(minute=5, second=0, microsecond=0)
    # When it is still young, nothing is written
    assert backlog(3600, dt.datetime.now(dt.UTC)) == 0
    # When it is older than the maximum age, checks within one hour write one alert; the next hour another
    assert [backlog(3600, hour), backlog(3600, hour + dt.timedelta(minutes=50))] == [1, 1]
    system = alerts(tenant, system_kinds=ALL_SYSTEM_KINDS)
    assert [(a["kind"], a["merchantId"], a["detail"]["count"]) for a in system] == [("RECONCILE_BACKLOG", None, 1)]
    assert backlog(3600, hour + dt.timedelta(hours=1)) == 1
    assert len(alerts(tenant, system_kinds=ALL_SYSTEM_KINDS)) == 2
    # And tenants do not see the operators' backlog alert by default
    assert alerts(tenant) == []
    # And once the message is settled there is no backlog
    with session_scope() as session:
        assert transition(session, message_id, [MessageState.AMBIGUOUS], MessageState.DELIVERED)
    assert backlog(3600, hour + dt.timedelta(hours=2)) == 0
    assert len(alerts(tenant, system_kinds=ALL_SYSTEM_KINDS)) == 2
