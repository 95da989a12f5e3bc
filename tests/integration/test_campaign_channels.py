"""VOICE and EMAIL campaigns in-process against real PostgreSQL: each channel's send rules (fields, consent of that
channel at send time, duplicate window, quota in that channel's units), expanded in chunks and dispatched in
batches like an SMS campaign. Chunks and batches run here by calling the tasks' bodies."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from factories import Tenant, make_merchant, make_tenant, opt

CREATE = "hexavox.campaign.create.v1"
#: 1,000 characters of speech: two minutes a call (900 characters a minute).
SPEECH = "Your class starts at six. " * 38 + "Thank you."


def numbers(count: int, start: int = 1000) -> list[str]:
    return [f"+1813555{n:04d}" for n in range(start, start + count)]


def create(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    from worker.runner import run_admin_job_by_name

    return run_admin_job_by_name(CREATE, {"auth": tenant.auth, "merchantId": "gym-a", **fields}, str(uuid.uuid4()))


def make_list(tenant: Tenant, contacts: list[str]) -> None:
    from worker.runner import run_admin_job_by_name

    answer = run_admin_job_by_name("hexavox.list.create.v1", {"auth": tenant.auth, "merchantId": "gym-a",
                                                              "listId": "vip", "name": "VIP", "contacts": contacts},
                                   str(uuid.uuid4()))
    assert answer["result"]["added"] == len(contacts), answer


def run_and_dispatch(campaign_id: str) -> list[str]:
    """Every chunk in turn, then every message they queued through batch dispatch; the ids dispatched."""
    from schema.models import Campaign
    from tasks.campaigns import run_campaign_chunk
    from worker.db import session_scope
    from worker.policy.dispatch_batch import dispatch_batch
    from worker.sending import provider_bulk_sender, provider_sender
    from worker.settings import get_settings

    with session_scope() as session:
        row_id, cursor = session.execute(select(Campaign.id, Campaign.cursor)
                                         .where(Campaign.request_id == campaign_id)).one()
    ids: list[str] = []
    at: int | None = int(cursor)
    while at is not None:
        result = run_campaign_chunk(row_id, at)
        ids += [mid for mid, _, _ in result.to_dispatch]
        at = result.next_cursor
    settings = get_settings()
    outcome = dispatch_batch(ids, settings, provider_sender(settings), redelivered=False,
                             bulk=provider_bulk_sender(settings))
    assert outcome.steps == {"SENT": len(ids)}, outcome
    return ids


def view(tenant: Tenant, campaign_id: str) -> dict[str, Any]:
    from worker.runner import run_admin_job_by_name

    answer = run_admin_job_by_name("hexavox.campaign.get.v1", {"auth": tenant.auth, "merchantId": "gym-a",
                                                               "campaignId": campaign_id}, str(uuid.uuid4()))
    assert answer["status"] == "ACCEPTED", answer
    return dict(answer["result"]["counts"], state=answer["result"]["state"], channel=answer["result"]["channel"])


def used(tenant: Tenant, channel: str) -> int:
    from schema.models import Balance
    from worker.db import session_scope
    from worker.policy.merchants import load_merchant

    with session_scope() as session:
        merchant = load_merchant(session, tenant.tenant_id, "gym-a")
        return int(session.get(Balance, (merchant.id, channel)).used)  # type: ignore[union-attr]


def messages(campaign_id: str) -> list[Any]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        rows = session.scalars(select(Message).where(Message.request_id == campaign_id)).all()
        session.expunge_all()
        return list(rows)


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "4")
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", voice=100, email=100)
    return tenant


def test_a_voice_campaign_to_a_list_calls_each_opted_in_member_once_and_charges_minutes(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    from providers.simulated import ledger_counts

    # Given a list of 10 numbers: 8 opted in to VOICE, one opted in to SMS only, one to nothing
    contacts = numbers(10)
    make_list(tenant, contacts)
    for contact in contacts[:8]:
        opt(tenant, "gym-a", "VOICE", contact)
    opt(tenant, "gym-a", "SMS", contacts[8])
    # When a VOICE campaign of a 1,000-character text is created for the list
    answer = create(tenant, channel="VOICE", listId="vip", body=SPEECH, record=True, timeoutSeconds=45,
                    sender="GYMA")
    assert answer["status"] == "ACCEPTED", answer
    assert answer["result"]["warnings"] == ["sender is not used by VOICE campaigns"]
    campaign_id = answer["result"]["campaignId"]
    assert answer["result"]["planned"] == 10
    # And one member opts out of VOICE before the chunks run, another out of SMS only
    opt(tenant, "gym-a", "VOICE", contacts[0], "OPT_OUT")
    opt(tenant, "gym-a", "SMS", contacts[1], "OPT_OUT")
    sent = run_and_dispatch(campaign_id)
    # Then the 7 members still opted in to VOICE are called once each, for two minutes each
    final = view(tenant, campaign_id)
    assert (final["state"], final["channel"], final["planned"], final["pending"]) == ("COMPLETED", "VOICE", 10, 0)
    assert final["refusedByCode"] == {"E805": 1, "E806": 2}
    rows = {m.recipient: m for m in messages(campaign_id)}
    called = sorted(r for r, m in rows.items() if m.status != "REFUSED")
    assert called == sorted(contacts[1:8]) and len(sent) == 7
    assert {(m.channel, m.units, m.body, m.options["record"], m.options["timeoutSeconds"])
            for r, m in rows.items() if r in called} == {("VOICE", 2, SPEECH, True, 45)}
    assert used(tenant, "VOICE") == 14 and used(tenant, "SMS") == 0
    calls = ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"])
    assert {mid: calls.get(mid, 0) for mid in sent} == dict.fromkeys(sent, 1)


def test_an_email_campaign_sends_each_address_once(tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    from providers.simulated import ledger_counts

    # Given five addresses in `to`: one given twice (in another case), one invalid, one opted out of EMAIL
    to = ["ann@example.com", "Bob@Example.com", "bob@example.com", "not-an-address", "cy@example.com",
          "dee@example.com"]
    opt(tenant, "gym-a", "EMAIL", "cy@example.com", "OPT_OUT")
    # When a transactional EMAIL campaign is created and run
    answer = create(tenant, channel="EMAIL", type="TXN", to=to, subject="Timetable", body="<p>New classes</p>")
    assert answer["status"] == "ACCEPTED", answer
    campaign_id = answer["result"]["campaignId"]
    sent = run_and_dispatch(campaign_id)
    # Then each valid address that may receive it gets it once, with its subject, one unit each
    final = view(tenant, campaign_id)
    assert (final["state"], final["planned"]) == ("COMPLETED", 6)
    assert final["refusedByCode"] == {"E805": 1, "E807": 1, "E811": 1}
    rows = messages(campaign_id)
    live = sorted((m.recipient, m.subject, m.message_type, m.units) for m in rows if m.status != "REFUSED")
    assert live == [(a, "Timetable", "TRANSACTIONAL", 1) for a in
                    ("ann@example.com", "bob@example.com", "dee@example.com")]
    assert used(tenant, "EMAIL") == 3
    calls = ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"])
    assert sorted(calls.get(mid, 0) for mid in sent) == [1, 1, 1]


def test_voice_minutes_running_out_call_what_fits_and_refuse_the_rest(
        hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "4")
    reset_settings()
    # Given a merchant with 9 voice minutes and 6 opted-in numbers, and a two-minute text
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", voice=9)
    contacts = numbers(6)
    for contact in contacts:
        opt(tenant, "gym-a", "VOICE", contact)
    campaign_id = create(tenant, channel="VOICE", to=contacts, body=SPEECH)["result"]["campaignId"]
    run_and_dispatch(campaign_id)
    # Then four calls fit (8 minutes) and the other two are refused E808, free
    final = view(tenant, campaign_id)
    assert (final["state"], final["refusedByCode"]) == ("COMPLETED", {"E808": 2})
    assert used(tenant, "VOICE") == 8
    assert sorted(m.units for m in messages(campaign_id)) == [0, 0, 2, 2, 2, 2]


#: A campaign each channel's send refuses as a whole, the code and the field named (one test: a database each is slow).
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"channel": "EMAIL", "listId": "vip", "subject": "Hi", "body": "<p>Hi</p>"}, "E883", "listId"),
    ({"channel": "EMAIL", "to": ["ann@example.com"], "body": "<p>Hi</p>"}, "E823", "subject"),
    ({"channel": "EMAIL", "to": ["ann@example.com"], "subject": "Hi\r\nBcc: x@example.com", "body": "<p>Hi</p>"},
     "E823", "subject"),
    ({"channel": "VOICE", "to": numbers(2), "body": "Hi", "timeoutSeconds": 500}, "E822", "timeoutSeconds"),
    ({"channel": "VOICE", "to": numbers(2), "body": " "}, "E822", "body"),
    ({"channel": "VOICE", "listId": "vip", "body": "Hi", "type": "REMINDER"}, "E400", "type"),
    ({"channel": "VOICE", "to": numbers(2), "body": "Hi", "type": "PROMO"}, "E615", "type"),
    ({"channel": "FAX", "to": numbers(2), "body": "Hi"}, "E821", "channel"),
]


def test_a_campaign_is_refused_with_its_channels_own_codes(tenant: Tenant) -> None:
    from schema.models import Campaign
    from worker.db import session_scope

    make_list(tenant, numbers(2))
    answers = [create(tenant, **fields)["error"] for fields, _, _ in REFUSED]
    assert [(a["code"], a.get("field")) for a in answers] == [(code, f) for _, code, f in REFUSED], answers
    with session_scope() as session:
        assert session.scalars(select(Campaign)).all() == []
