"""The usage report (docs/contract.md 5, seed 003) over messages made by the real intake and moved by real transitions.

Charges must be what will be billed: units of DELIVERED messages (and of those still on their way), priced
per unit with the markup on top; refused and failed messages cost nothing. The report stays PROVISIONAL
while any message in range may still change and turns FINAL once every one has settled.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from schema.states import MessageState
from worker.catalogue import Code
from worker.errors import Refusal

from factories import Tenant, make_merchant, make_tenant, opt

SMS_TASK = "hexavox.sms.send.v1"
VOICE_TASK = "hexavox.voice.send.v1"
EMAIL_TASK = "hexavox.email.send.v1"
USAGE_TASK = "hexavox.report.usage.v1"
PRICES = {"SMS": 100_000, "VOICE": 200_000, "EMAIL": 50_000}  # micro-dollars: 0.10, 0.20, 0.05 USD per unit
MARKUP = 30
LONG_BODY = "Your class moved to 6 pm today. " * 6  # 192 GSM characters: two segments


@pytest.fixture
def priced_env(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Round prices so every expected amount is easy to check by hand."""
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_UNIT_PRICES", json.dumps(PRICES))
    monkeypatch.setenv("HEXAVOX_MARKUP_PERCENT", str(MARKUP))
    reset_settings()
    yield hexavox_env
    reset_settings()


def send(task: str, payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    return run_send_job(task, payload, str(uuid.uuid4())).result


def one_message(task: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one message and return its row of the answer (id, status, units)."""
    answer = send(task, payload)
    assert len(answer["messages"]) == 1, answer
    row: dict[str, Any] = answer["messages"][0]
    return row


def move(message_id: str, *path: MessageState, start: MessageState = MessageState.QUEUED) -> None:
    """Walk a message through ``path`` from ``start``, one real transition at a time."""
    from worker.db import session_scope
    from worker.policy.transitions import transition

    current = start
    with session_scope() as session:
        for state in path:
            assert transition(session, message_id, [current], state), (message_id, current, state)
            current = state


def deliver(message_id: str) -> None:
    move(message_id, MessageState.DISPATCHING, MessageState.SENT, MessageState.DELIVERED)


def report(tenant: Tenant, merchant: str | None, day: dt.date | None = None,
           until: dt.date | None = None) -> dict[str, Any]:
    from worker.db import session_scope
    from worker.policy.usage import usage_report

    day = day or dt.datetime.now(dt.UTC).date()
    with session_scope() as session:
        return usage_report(session, tenant.tenant_id, merchant, day, until or day, prices=PRICES,
                            markup_percent=MARKUP)


def charges(units: int, price: int) -> str:
    """units x price x (1 + markup), in dollars with two decimals: what the report must bill."""
    exact = Decimal(units * price) / 1_000_000 * (1 + Decimal(MARKUP) / 100)
    return str(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def sms_payload(tenant: Tenant, to: str, body: str = "Class moved to 6 pm", **fields: Any) -> dict[str, Any]:
    return {"auth": tenant.auth, "merchantId": "gym-a", "to": to, "body": body, "sender": "GYMA", "type": "TXN",
            **fields}


def _traffic(tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """Three SMS delivered (one of two segments), one failed, one AMBIGUOUS, one refused; a voice call and an
    email delivered."""
    opt(tenant, "gym-a", "SMS", "+18135551009", "OPT_OUT")
    delivered = [one_message(SMS_TASK, sms_payload(tenant, "+18135551001")),
                 one_message(SMS_TASK, sms_payload(tenant, "+18135551002")),
                 one_message(SMS_TASK, sms_payload(tenant, "+18135551003", body=LONG_BODY))]
    failed = one_message(SMS_TASK, sms_payload(tenant, "+18135551004"))
    ambiguous = one_message(SMS_TASK, sms_payload(tenant, "+18135551005"))
    refused = one_message(SMS_TASK, sms_payload(tenant, "+18135551009"))
    call = one_message(VOICE_TASK, {"auth": tenant.auth, "merchantId": "gym-a", "to": "+18135551006",
                                    "text": "Your class starts in one hour"})
    mail = one_message(EMAIL_TASK, {"auth": tenant.auth, "merchantId": "gym-a", "to": "member@example.com",
                                    "subject": "Class moved", "body": "<p>Class moved to 6 pm</p>"})
    assert refused["status"] == "REFUSED" and refused["error"]["code"] == Code.CONSENT_OPTED_OUT.value
    for row in [*delivered, call, mail]:
        deliver(row["messageId"])
    move(failed["messageId"], MessageState.DISPATCHING, MessageState.SENT, MessageState.FAILED)
    move(ambiguous["messageId"], MessageState.DISPATCHING, MessageState.AMBIGUOUS)
    return {"sms": delivered, "failed": [failed], "ambiguous": [ambiguous], "voice": [call], "email": [mail]}


def _units(rows: list[dict[str, Any]]) -> int:
    return sum(int(row["units"]) for row in rows)


def test_report_bills_delivered_units_and_stays_provisional_while_a_message_is_ambiguous(
        priced_env: dict[str, str]) -> None:
    # Given delivered, failed, refused and AMBIGUOUS messages of today
    tenant = make_tenant()
    make_merchant(tenant)
    sent = _traffic(tenant)
    assert _units(sent["sms"]) == 4
    # When the report for today is read
    found = report(tenant, "gym-a")
    # Then delivered and still-possible SMS count, the failed and refused ones do not
    assert (found["totalSmsCount"], found["totalVoiceCount"], found["totalEmailCount"]) == (4, 1, 1)
    assert found["totalVoiceMinutes"] == _units(sent["voice"])
    billable_sms = _units(sent["sms"]) + _units(sent["ambiguous"])
    assert found["channels"]["SMS"]["units"] == billable_sms
    assert found["channels"]["SMS"]["finalCharges"] == charges(billable_sms, PRICES["SMS"])
    assert found["channels"]["SMS"]["byStatus"] == {"DELIVERED": 3, "FAILED": 1, "AMBIGUOUS": 1, "REFUSED": 1}
    # And it is PROVISIONAL, saying why
    assert found["freshnessState"] == "PROVISIONAL"
    assert found["freshnessReason"] == "1 message in range is not FINAL yet (1 AMBIGUOUS, 0 awaiting delivery report)"


def test_report_turns_final_with_delivered_charges_once_the_ambiguous_message_settles(
        priced_env: dict[str, str]) -> None:
    # Given the same traffic, When the AMBIGUOUS message is settled as failed
    tenant = make_tenant()
    make_merchant(tenant)
    sent = _traffic(tenant)
    move(sent["ambiguous"][0]["messageId"], MessageState.FAILED, start=MessageState.AMBIGUOUS)
    found = report(tenant, "gym-a")
    # Then only delivered units are billed: units x price x (1 + markup)
    cost_micros = sum(_units(sent[kind]) * PRICES[channel]
                      for kind, channel in (("sms", "SMS"), ("voice", "VOICE"), ("email", "EMAIL")))
    assert found["finalCharges"] == charges(cost_micros, 1)
    assert found["providerCost"] == str((Decimal(cost_micros) / 1_000_000).quantize(Decimal("0.01")))
    assert Decimal(found["providerCost"]) + Decimal(found["markup"]) == Decimal(found["finalCharges"])
    assert (found["awsCost"], found["hqMarkup"], found["currency"]) == (found["providerCost"], found["markup"], "USD")
    assert found["totalSmsCount"] == 3
    # And the report is FINAL
    assert (found["freshnessState"], found["freshnessReason"]) == ("FINAL", None)


def test_refused_messages_cost_nothing_and_a_range_without_messages_is_final(priced_env: dict[str, str]) -> None:
    # Given a merchant whose only message was refused (opted out)
    tenant = make_tenant()
    make_merchant(tenant)
    opt(tenant, "gym-a", "SMS", "+18135551009", "OPT_OUT")
    assert one_message(SMS_TASK, sms_payload(tenant, "+18135551009"))["status"] == "REFUSED"
    # Then today's report counts and charges nothing, and is FINAL (a refusal is settled at once)
    found = report(tenant, "gym-a")
    assert (found["totalSmsCount"], found["providerCost"], found["finalCharges"]) == (0, "0.00", "0.00")
    assert found["freshnessState"] == "FINAL"
    # And a queued message of today does not leak into yesterday's report
    one_message(SMS_TASK, sms_payload(tenant, "+18135551001"))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert report(tenant, "gym-a", yesterday)["totalSmsCount"] == 0
    queued = report(tenant, None)
    assert queued["freshnessReason"] == ("1 message in range is not FINAL yet "
                                         "(0 AMBIGUOUS, 0 awaiting delivery report, 1 not sent yet)")


def test_another_tenants_merchant_is_not_found_and_its_messages_are_not_counted(priced_env: dict[str, str]) -> None:
    # Given two tenants that each sent one SMS
    tenant, other = make_tenant("acme"), make_tenant("other")
    make_merchant(tenant)
    make_merchant(other, "gym-b")
    deliver(one_message(SMS_TASK, sms_payload(tenant, "+18135551001"))["messageId"])
    deliver(one_message(SMS_TASK, sms_payload(other, "+18135551001", merchantId="gym-b"))["messageId"])
    # Then naming the other tenant's merchant is E803, and the tenant-wide report sees only its own message
    with pytest.raises(Refusal) as refused:
        report(tenant, "gym-b")
    assert refused.value.code == Code.MERCHANT_NOT_FOUND
    assert report(tenant, None)["totalSmsCount"] == 1
    # And the job path answers E803 too
    from worker.runner import run_admin_job_by_name

    today = dt.datetime.now(dt.UTC).date().isoformat()
    answer = run_admin_job_by_name(USAGE_TASK, {"auth": tenant.auth, "merchantId": "gym-b", "from": today,
                                                "to": today}, str(uuid.uuid4()))
    assert (answer["status"], answer["error"]["code"]) == ("REFUSED", "E803")


def test_the_job_returns_the_same_report_and_refuses_a_reversed_range(priced_env: dict[str, str]) -> None:
    from worker.runner import run_admin_job_by_name

    # Given some traffic
    tenant = make_tenant()
    make_merchant(tenant)
    _traffic(tenant)
    today = dt.datetime.now(dt.UTC).date()
    payload = {"auth": tenant.auth, "merchantId": "gym-a", "from": today.isoformat(), "to": today.isoformat()}
    # When the report is asked for through the job
    answer = run_admin_job_by_name(USAGE_TASK, payload, str(uuid.uuid4()))
    # Then it is the same report
    assert answer["status"] == "ACCEPTED", answer
    assert answer["result"] == report(tenant, "gym-a")
    # And from after to is refused as invalid input
    reversed_range = {**payload, "from": (today + dt.timedelta(days=1)).isoformat()}
    refused = run_admin_job_by_name(USAGE_TASK, reversed_range, str(uuid.uuid4()))
    assert refused["error"]["code"] == Code.INVALID_INPUT.value
