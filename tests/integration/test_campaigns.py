"""Campaigns in-process against real PostgreSQL: intake answers at once, beat fires once, chunks re-check consent,
quota and the merchant, and pause/resume/cancel give exact counts. Chunks run here by calling the task's body."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import func, select, update

from factories import Tenant, make_merchant, make_tenant, opt, sms

SMS = "hexavox.sms.send.v1"


def numbers(count: int, start: int = 1000) -> list[str]:
    return [f"+1813555{n:04d}" for n in range(start, start + count)]


def make_list(tenant: Tenant, contacts: list[str], list_id: str = "vip") -> None:
    from worker.runner import run_admin_job_by_name

    answer = run_admin_job_by_name("hexavox.list.create.v1", {"auth": tenant.auth, "merchantId": "gym-a",
                                                              "listId": list_id, "name": "VIP",
                                                              "contacts": contacts}, str(uuid.uuid4()))
    assert answer["result"]["added"] == len(contacts), answer


def opt_in_all(tenant: Tenant, contacts: list[str]) -> None:
    for contact in contacts:
        opt(tenant, "gym-a", "SMS", contact)


def send(payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    return run_send_job(SMS, payload, str(uuid.uuid4())).result


def job(tenant: Tenant, name: str, campaign_id: str, **fields: Any) -> dict[str, Any]:
    from worker.runner import run_admin_job_by_name

    payload = {"auth": tenant.auth, "merchantId": "gym-a", "campaignId": campaign_id, **fields}
    return run_admin_job_by_name(f"hexavox.campaign.{name}.v1", payload, str(uuid.uuid4()))


def campaign_row(campaign_id: str) -> Any:
    from schema.models import Campaign
    from worker.db import session_scope

    with session_scope() as session:
        return session.scalars(select(Campaign).where(Campaign.request_id == campaign_id)).one()


def run_chunks(campaign_id: str, limit: int = 1000) -> int:
    """Run chunk after chunk in this process, as the chunk tasks would, until none follows; how many ran."""
    from tasks.campaigns import run_campaign_chunk

    row = campaign_row(campaign_id)
    cursor: int | None = int(row.cursor)
    ran = 0
    while cursor is not None and ran < limit:
        cursor = run_campaign_chunk(row.id, cursor).next_cursor
        ran += 1
    return ran


def counts(tenant: Tenant, campaign_id: str) -> dict[str, Any]:
    answer = job(tenant, "get", campaign_id)
    assert answer["status"] == "ACCEPTED", answer
    return dict(answer["result"]["counts"], state=answer["result"]["state"])


def make_due(campaign_id: str) -> None:
    from schema.models import Campaign
    from worker.db import session_scope

    with session_scope() as session:
        session.execute(update(Campaign).where(Campaign.request_id == campaign_id)
                        .values(scheduled_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))


def later(minutes: int = 20) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_count() -> int:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "10")
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=10_000)
    return tenant


def test_a_list_send_is_one_campaign_answered_at_once_with_its_planned_count(tenant: Tenant) -> None:
    # Given a list of 25 opted-in members
    contacts = numbers(25)
    make_list(tenant, contacts)
    opt_in_all(tenant, contacts)
    # When the list is sent to
    answer = send(sms(tenant, to=None, listId="vip", type="MKT"))
    # Then the answer carries the campaign and its planned count, and no message is written yet
    assert answer["status"] == "ACCEPTED" and answer["code"] == "E101", answer
    campaign_id = answer["campaign"]["campaignId"]
    assert answer["campaign"]["planned"] == 25 and answer["messages"] == []
    assert message_count() == 0
    # And the chunks (10 at a time) queue every member exactly once
    assert run_chunks(campaign_id) == 3
    final = counts(tenant, campaign_id)
    assert (final["state"], final["planned"], final["pending"], final["queued"]) == ("COMPLETED", 25, 0, 25)
    assert message_count() == 25


def test_a_single_send_keeps_its_per_message_answer(tenant: Tenant) -> None:
    answer = send(sms(tenant))
    assert "campaign" not in answer and [m["status"] for m in answer["messages"]] == ["QUEUED"]
    scheduled = send(sms(tenant, time=later(), body="Class moved to 7 pm"))
    assert "campaign" not in scheduled and [m["status"] for m in scheduled["messages"]] == ["SCHEDULED"]


def test_a_multi_recipient_mkt_send_and_a_scheduled_txn_send_become_campaigns(tenant: Tenant) -> None:
    opt_in_all(tenant, numbers(3))
    mkt = send(sms(tenant, to=numbers(3), type="MKT"))
    assert mkt["campaign"]["planned"] == 3 and mkt["campaign"]["state"] == "RUNNING"
    txn = send(sms(tenant, to=numbers(4, start=2000), time=later()))
    assert txn["campaign"]["planned"] == 4 and txn["campaign"]["state"] == "SCHEDULED"
    # And the per-message rules still hold for them: an OTP to two numbers is refused as before
    otp = send(sms(tenant, to=numbers(2), type="OTP", time=later()))
    assert otp["error"]["code"] == "E404", otp


def test_two_beats_ticking_at_once_fire_a_campaign_once_and_a_late_beat_fires_what_it_missed(
        tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.campaigns import campaign_tick

    # Given three campaigns scheduled for later, whose time passed while no beat ran
    ids = []
    for start in (1000, 2000, 3000):
        opt_in_all(tenant, numbers(2, start))
        ids.append(send(sms(tenant, to=numbers(2, start), type="MKT", time=later()))["campaign"]["campaignId"])
    for campaign_id in ids:
        make_due(campaign_id)
    published: list[tuple[int, int]] = []
    lock = threading.Lock()

    def record(items: Any) -> int:
        with lock:
            published.extend(items)
        return len(list(items))

    monkeypatch.setattr("tasks.campaigns.publish_campaign_chunks", record)
    # When two beats tick at the same moment, many times over
    barrier = threading.Barrier(2)

    def beat() -> None:
        for _ in range(5):
            barrier.wait()
            campaign_tick()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each campaign was started exactly once, by one of them
    assert sorted(cid for cid, _ in published) == sorted(campaign_row(c).id for c in ids)
    assert {campaign_row(c).state for c in ids} == {"RUNNING"}


def test_pause_resume_and_cancel_mid_run_give_exact_counts(tenant: Tenant) -> None:
    from tasks.campaigns import run_campaign_chunk

    contacts = numbers(35)
    make_list(tenant, contacts)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=None, listId="vip", type="MKT"))["campaign"]["campaignId"]
    row = campaign_row(campaign_id)
    # Given one chunk ran
    after_first = run_campaign_chunk(row.id, 0).next_cursor
    assert counts(tenant, campaign_id)["queued"] == 10
    # When the campaign is paused, the next chunk does nothing
    assert job(tenant, "pause", campaign_id)["result"]["state"] == "PAUSED"
    assert after_first is not None and run_campaign_chunk(row.id, after_first).to_dispatch == []
    paused = counts(tenant, campaign_id)
    assert (paused["queued"], paused["pending"]) == (10, 25)
    # When it is resumed, it continues exactly where it stopped
    assert job(tenant, "resume", campaign_id)["result"]["state"] == "RUNNING"
    run_campaign_chunk(row.id, after_first)
    resumed = counts(tenant, campaign_id)
    assert (resumed["queued"], resumed["pending"]) == (20, 15)
    # When it is cancelled: the 15 not expanded and the 20 queued but not dispatched are refused, free
    cancelled = job(tenant, "cancel", campaign_id)["result"]
    assert cancelled["state"] == "CANCELLED"
    final = cancelled["counts"]
    assert (final["queued"], final["pending"], final["refused"]) == (0, 0, 35)
    assert final["refusedByCode"] == {"E882": 35}
    assert sms_used(tenant) == 0
    # And a cancelled campaign cannot be resumed
    assert job(tenant, "resume", campaign_id)["error"]["code"] == "E881"


def sms_used(tenant: Tenant) -> int:
    from schema.models import Balance
    from worker.db import session_scope
    from worker.policy.merchants import load_merchant

    with session_scope() as session:
        merchant = load_merchant(session, tenant.tenant_id, "gym-a")
        return int(session.get(Balance, (merchant.id, "SMS")).used)  # type: ignore[union-attr]


def test_a_recipient_who_opts_out_after_scheduling_is_not_sent_to(tenant: Tenant) -> None:
    from tasks.campaigns import campaign_tick

    # Given a campaign scheduled for later to three opted-in members
    contacts = numbers(3)
    make_list(tenant, contacts)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=None, listId="vip", type="MKT", time=later()))["campaign"]["campaignId"]
    # When one of them opts out (say by a STOP reply) before its time comes
    opt(tenant, "gym-a", "SMS", contacts[1], "OPT_OUT")
    make_due(campaign_id)
    campaign_tick()
    run_chunks(campaign_id)
    # Then that recipient is refused E805 and the others are queued
    final = counts(tenant, campaign_id)
    assert (final["queued"], final["refusedByCode"]) == (2, {"E805": 1})


def test_a_scheduled_single_message_rechecks_consent_and_the_merchant_at_release(tenant: Tenant) -> None:
    from schema.models import Message
    from tasks.maintenance import release_due
    from worker.db import session_scope

    # Given two single sends scheduled for later
    first = send(sms(tenant, time=later()))["messages"][0]["messageId"]
    second = send(sms(tenant, to="+18135550999", time=later()))["messages"][0]["messageId"]
    # When the first recipient opts out before the time comes
    opt(tenant, "gym-a", "SMS", "+18135551234", "OPT_OUT")
    with session_scope() as session:
        session.execute(update(Message).values(scheduled_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    release_due()
    # Then it is refused E805 (free) and the other one is queued
    with session_scope() as session:
        rows = {m.id: m for m in session.scalars(select(Message))}
    assert (rows[first].status, rows[first].error_code, rows[first].units) == ("REFUSED", "E805", 0)
    assert rows[second].status == "QUEUED"
    assert sms_used(tenant) == rows[second].units


def test_quota_running_out_mid_campaign_sends_what_fits_and_refuses_the_rest(
        hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "10")
    reset_settings()
    # Given a merchant with 15 SMS units left and a list of 25 opted-in members
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=15)
    contacts = numbers(25)
    make_list(tenant, contacts)
    opt_in_all(tenant, contacts)
    # When the list is sent to
    campaign_id = send(sms(tenant, to=None, listId="vip", type="MKT"))["campaign"]["campaignId"]
    run_chunks(campaign_id)
    # Then 15 are queued (the second chunk partly) and the other 10 refused E808, free
    final = counts(tenant, campaign_id)
    assert (final["state"], final["queued"], final["refusedByCode"]) == ("COMPLETED", 15, {"E808": 10})
    assert sms_used(tenant) == 15


def test_an_unknown_campaign_or_another_tenants_is_not_found(tenant: Tenant) -> None:
    opt_in_all(tenant, numbers(2))
    campaign_id = send(sms(tenant, to=numbers(2), type="MKT"))["campaign"]["campaignId"]
    other = make_tenant("other")
    make_merchant(other, "gym-a")
    assert job(tenant, "get", str(uuid.uuid4()))["error"]["code"] == "E880"
    assert job(other, "pause", campaign_id)["error"]["code"] == "E880"
    assert job(tenant, "get", campaign_id)["result"]["counts"]["planned"] == 2


def test_campaign_create_job_answers_at_once_and_runs(tenant: Tenant) -> None:
    from worker.runner import run_admin_job_by_name

    opt_in_all(tenant, numbers(3))
    answer = run_admin_job_by_name("hexavox.campaign.create.v1", {
        "auth": tenant.auth, "merchantId": "gym-a", "to": numbers(3), "body": "Sale", "sender": "GYMA",
        "name": "Spring"}, str(uuid.uuid4()))
    assert answer["status"] == "ACCEPTED", answer
    campaign_id = answer["result"]["campaignId"]
    assert answer["result"]["planned"] == 3
    run_chunks(campaign_id)
    final = counts(tenant, campaign_id)
    assert (final["state"], final["queued"]) == ("COMPLETED", 3)
    email_list = run_admin_job_by_name("hexavox.campaign.create.v1", {
        "auth": tenant.auth, "merchantId": "gym-a", "channel": "EMAIL", "listId": "vip", "subject": "Hi",
        "body": "<p>Hi</p>"}, str(uuid.uuid4()))
    assert email_list["error"]["code"] == "E883", email_list


def test_batch_dispatch_sends_each_message_once_and_a_redelivered_batch_hands_claimed_ones_to_reconcile(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    from providers.simulated import ledger_counts
    from schema.models import Message, MessageEvent
    from tasks.campaigns import run_campaign_chunk
    from worker.db import session_scope
    from worker.policy.dispatch_batch import _claim_many, dispatch_batch
    from worker.sending import provider_bulk_sender, provider_sender
    from worker.settings import get_settings

    # Given a campaign of 12 whose first chunk queued 10 messages
    contacts = numbers(12)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    ids = [mid for mid, _, _ in run_campaign_chunk(campaign_row(campaign_id).id, 0).to_dispatch]
    assert len(ids) == 10
    settings = get_settings()
    # And a worker that claimed two of them and died before recording (they are DISPATCHING)
    claimed = _claim_many(ids[:2], settings.default_provider, settings.max_delivery_attempts)
    assert len(claimed) == 2
    # When the batch is delivered again, marked redelivered
    outcome = dispatch_batch(ids, settings, provider_sender(settings), redelivered=True,
                             bulk=provider_bulk_sender(settings))
    # Then the eight others are sent in the batch, once each, and the two are AMBIGUOUS, never sent again
    assert outcome.steps == {"SENT": 8, "REDELIVERED": 2}
    with session_scope() as session:
        states = dict(session.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).tuples().all())
    assert [states[mid] for mid in ids[:2]] == ["AMBIGUOUS"] * 2
    assert {states[mid] for mid in ids[2:]} <= {"SENT", "DELIVERED"}
    calls = ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"])
    assert {mid: calls.get(mid, 0) for mid in ids} == {**dict.fromkeys(ids[:2], 0), **dict.fromkeys(ids[2:], 1)}
    # And each sent message has its history, claim then send, with the provider's reference stored
    with session_scope() as session:
        history = session.execute(select(MessageEvent.message_id, MessageEvent.from_state, MessageEvent.to_state)
                                  .where(MessageEvent.message_id.in_(ids[2:])).order_by(MessageEvent.id)).all()
        refs = dict(session.execute(select(Message.id, Message.provider_ref).where(Message.id.in_(ids[2:])))
                    .tuples().all())
    for mid in ids[2:]:
        assert [(f, t) for m, f, t in history if m == mid] == [("QUEUED", "DISPATCHING"), ("DISPATCHING", "SENT")]
        assert (refs[mid] or "").startswith("sim-")
    # And running the same batch once more changes and sends nothing
    again = dispatch_batch(ids, settings, provider_sender(settings), redelivered=False,
                           bulk=provider_bulk_sender(settings))
    assert again.steps == {"SKIPPED": 10}
    assert ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"]) == calls


def test_a_second_copy_of_a_written_chunk_does_nothing_and_a_redelivered_one_picks_up_the_chain(
        tenant: Tenant) -> None:
    from tasks.campaigns import run_campaign_chunk

    # Given a campaign of 25 whose first chunk was written
    contacts = numbers(25)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    row = campaign_row(campaign_id)
    first = run_campaign_chunk(row.id, 0)
    assert (len(first.to_dispatch), first.next_cursor) == (10, 10)
    # When a fresh copy of that chunk runs (beat restarted a campaign that was only slow): nothing happens
    copy = run_campaign_chunk(row.id, 0, redelivered=False)
    assert (copy.to_dispatch, copy.next_cursor) == ([], None)
    # When the broker redelivers it (its worker died after the commit): its QUEUED messages go out again and the
    # next chunk is started, and nothing is written twice
    again = run_campaign_chunk(row.id, 0, redelivered=True)
    assert (sorted(again.to_dispatch), again.next_cursor) == (sorted(first.to_dispatch), 10)
    assert message_count() == 10
    run_chunks(campaign_id)
    final = counts(tenant, campaign_id)
    assert (final["state"], final["queued"]) == ("COMPLETED", 25) and message_count() == 25


def test_a_campaign_send_run_again_under_its_id_gets_the_first_answer_and_creates_nothing(tenant: Tenant) -> None:
    from schema.models import Campaign
    from tasks.campaigns import run_campaign_chunk
    from worker.db import session_scope
    from worker.runner import run_send_job

    # Given a campaign send whose first chunk queued its messages
    contacts = numbers(3)
    opt_in_all(tenant, contacts)
    payload, request_id = sms(tenant, to=contacts, type="MKT"), str(uuid.uuid4())
    first = run_send_job(SMS, payload, request_id)
    run_campaign_chunk(campaign_row(request_id).id, 0)
    # When the broker delivers the same job again
    again = run_send_job(SMS, payload, request_id)
    # Then it answers as the first time, adds no campaign, and leaves the queued messages to the chunk's dispatch
    assert again.result == first.result and again.to_dispatch == []
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1


def test_beat_restarts_a_running_campaign_whose_chunk_task_was_lost_where_it_stopped(
        tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from schema.models import Campaign
    from tasks.campaigns import campaign_tick, run_campaign_chunk
    from worker.db import session_scope

    # Given a running campaign whose first chunk ran, and whose next chunk task the broker lost long ago
    contacts = numbers(25)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    row = campaign_row(campaign_id)
    run_campaign_chunk(row.id, 0)
    with session_scope() as session:
        session.execute(update(Campaign).where(Campaign.id == row.id).values(
            progressed_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)))
    published: list[tuple[int, int]] = []

    def publish(items: Iterable[tuple[int, int]]) -> int:
        published.extend(items)
        return 0

    monkeypatch.setattr("tasks.campaigns.publish_campaign_chunks", publish)
    # When beat ticks twice
    campaign_tick()
    campaign_tick()
    # Then the chunk at the cursor is started once (the first tick reset the stall clock)
    assert published == [(row.id, 10)]


DLR_URL = "https://merchant.example.com/dlr"


def refused_callbacks() -> dict[str, tuple[str, str]]:
    """message id -> (event status, error code in the signed body) of every callback row written."""
    import json

    from schema.models import OutboundCallback
    from worker.db import session_scope

    with session_scope() as session:
        return {row.message_id: (row.event_status, json.loads(row.body)["errorCode"])
                for row in session.scalars(select(OutboundCallback))}


def refused_messages(campaign_id: str) -> dict[str, str]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return {str(mid): str(code) for mid, code in session.execute(select(Message.id, Message.error_code).where(
            Message.request_id == campaign_id, Message.status == "REFUSED")).all()}


def test_recipients_refused_by_a_chunk_get_their_dlr_callback(
        hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "10")
    reset_settings()
    # Given a merchant with 3 SMS units and six recipients: one opted out, one given twice, one never opted in
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=3)
    contacts = numbers(6)
    opt_in_all(tenant, contacts[:5])
    opt(tenant, "gym-a", "SMS", contacts[1], "OPT_OUT")
    to = [contacts[0], contacts[1], contacts[2], contacts[2], contacts[3], contacts[4], contacts[5]]
    # When they are sent a MKT campaign with a dlrUrl
    campaign_id = send(sms(tenant, to=to, type="MKT", dlrUrl=DLR_URL))["campaign"]["campaignId"]
    run_chunks(campaign_id)
    # Then each refusal (opted out, duplicate, no OPT_IN, over quota) has its FINAL callback with its code
    refused = refused_messages(campaign_id)
    assert sorted(refused.values()) == ["E805", "E806", "E807", "E808"], refused
    assert refused_callbacks() == {mid: ("REFUSED", code) for mid, code in refused.items()}


def test_messages_refused_by_cancel_get_their_dlr_callback(tenant: Tenant) -> None:
    from tasks.campaigns import run_campaign_chunk

    # Given a campaign of 15 with a dlrUrl whose first chunk queued 10
    contacts = numbers(15)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT", dlrUrl=DLR_URL))["campaign"]["campaignId"]
    run_campaign_chunk(campaign_row(campaign_id).id, 0)
    assert refused_callbacks() == {}
    # When it is cancelled
    assert job(tenant, "cancel", campaign_id)["result"]["counts"]["refused"] == 15
    # Then the 10 queued messages are refused E882 and each has its callback (the 5 never expanded have no message)
    refused = refused_messages(campaign_id)
    assert len(refused) == 10 and set(refused.values()) == {"E882"}
    assert refused_callbacks() == dict.fromkeys(refused, ("REFUSED", "E882"))


def claim(campaign_pk: int, start: int) -> Any:
    from worker.db import session_scope
    from worker.policy.campaign_chunks import claim_chunk

    with session_scope() as session:
        return claim_chunk(session, campaign_pk, start, chunk_size=10, parallel=3)


@pytest.fixture
def parallel3(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Three chunks of a campaign in flight at most; the chunks published are collected, not sent."""
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_PARALLEL_CHUNKS", "3")
    reset_settings()
    published: list[tuple[int, int]] = []

    def collect(items: list[tuple[int, int]]) -> int:
        published.extend(items)
        return len(items)

    monkeypatch.setattr("tasks.campaigns.publish_campaign_chunks", collect)
    monkeypatch.setattr("worker.publish.publish_campaign_chunks", collect)
    return published


def test_chunks_claimed_ahead_are_parked_by_pause_and_resume_continues_exactly_where_it_stopped(
        tenant: Tenant, parallel3: list[tuple[int, int]]) -> None:
    from tasks.campaigns import run_campaign_chunk

    contacts = numbers(50)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    pk = campaign_row(campaign_id).id
    # Given three chunks claimed at once (each starts the next while places are free; the third fills them)
    assert [(c.end, c.successor) for c in (claim(pk, 0), claim(pk, 10), claim(pk, 20))] == [
        (10, 10), (20, 20), (30, None)]
    assert claim(pk, 30).end is None  # a fourth waits for a place
    # And one of them written
    assert len(run_campaign_chunk(pk, 10).to_dispatch) == 10
    # When the campaign is paused, the two others write nothing: their ranges wait
    assert job(tenant, "pause", campaign_id)["result"]["state"] == "PAUSED"
    assert run_campaign_chunk(pk, 0).to_dispatch == [] and run_campaign_chunk(pk, 20).to_dispatch == []
    paused = counts(tenant, campaign_id)
    assert (paused["queued"], paused["pending"]) == (10, 40)
    # When it is resumed: a chunk for each waiting range and one at the cursor
    parallel3.clear()
    assert job(tenant, "resume", campaign_id)["result"]["state"] == "RUNNING"
    assert parallel3 == [(pk, 0), (pk, 20), (pk, 30)]
    pending = [start for _, start in parallel3]
    while pending:
        follower = run_campaign_chunk(pk, pending.pop(0)).next_cursor
        pending.extend([] if follower is None else [follower])
    # Then every recipient is written exactly once and the counts are exact
    final = counts(tenant, campaign_id)
    assert (final["state"], final["queued"], final["pending"], final["refused"]) == ("COMPLETED", 50, 0, 0)
    assert message_count() == 50


def test_cancel_with_chunks_in_flight_refuses_exactly_what_no_chunk_wrote(
        tenant: Tenant, parallel3: list[tuple[int, int]]) -> None:
    from tasks.campaigns import run_campaign_chunk

    contacts = numbers(50)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    pk = campaign_row(campaign_id).id
    # Given three chunks claimed and one of them written
    for start in (0, 10, 20):
        claim(pk, start)
    run_campaign_chunk(pk, 20)
    # When the campaign is cancelled, then the chunks still in flight run
    final = job(tenant, "cancel", campaign_id)["result"]["counts"]
    for start in (0, 10, 30):
        assert run_campaign_chunk(pk, start).to_dispatch == []
    # Then the 10 written and the 40 never written are refused E882, and nothing more was written
    assert (final["pending"], final["queued"], final["refused"], final["refusedByCode"]) == (0, 0, 50, {"E882": 50})
    assert message_count() == 10
    assert counts(tenant, campaign_id)["refused"] == 50 and sms_used(tenant) == 0


def test_chunks_of_one_campaign_run_on_several_threads_at_once_and_count_exactly(
        tenant: Tenant, parallel3: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    import queue
    import time

    from tasks.campaigns import run_campaign_chunk
    from worker.policy.campaign_chunks import write_chunk

    contacts = numbers(60)
    make_list(tenant, contacts)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=None, listId="vip", type="MKT"))["campaign"]["campaignId"]
    pk = campaign_row(campaign_id).id
    # Given chunk tasks taken from one queue by three worker threads, each noting how many write at once
    tasks: queue.Queue[int] = queue.Queue()

    def publish(items: list[tuple[int, int]]) -> int:
        for _, start in items:
            tasks.put(start)
        return len(items)

    monkeypatch.setattr("tasks.campaigns.publish_campaign_chunks", publish)
    writing, most, lock = [0], [0], threading.Lock()
    original = write_chunk

    def observed(*args: Any, **kwargs: Any) -> Any:
        with lock:
            writing[0] += 1
            most[0] = max(most[0], writing[0])
        try:
            time.sleep(0.05)
            return original(*args, **kwargs)
        finally:
            with lock:
                writing[0] -= 1

    monkeypatch.setattr("tasks.campaigns.write_chunk", observed)

    def worker() -> None:
        while campaign_row(campaign_id).state != "COMPLETED":
            try:
                start = tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            run_campaign_chunk(pk, start)

    tasks.put(0)
    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then several chunks were written at the same time, and every member exactly once
    assert most[0] > 1
    final = counts(tenant, campaign_id)
    assert (final["state"], final["queued"], final["pending"]) == ("COMPLETED", 60, 0)
    assert message_count() == 60


def test_a_chunk_that_died_before_its_commit_is_redone_once_while_the_next_ones_go_on(
        tenant: Tenant, parallel3: list[tuple[int, int]]) -> None:
    from tasks.campaigns import run_campaign_chunk
    from worker.db import session_scope
    from worker.policy.campaign_chunks import write_chunk

    contacts = numbers(30)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    pk = campaign_row(campaign_id).id
    # Given the first chunk claimed (starting the next) and dying before its write committed
    assert claim(pk, 0).successor == 10

    def die() -> None:
        raise SystemExit("worker lost")

    with pytest.raises(SystemExit), session_scope() as session:
        write_chunk(session, pk, 0, 10, window_seconds=10, parallel=3, before_commit=die)
    assert message_count() == 0
    # When the next chunks run, and then the broker gives the dead one back
    run_campaign_chunk(pk, 10)
    run_campaign_chunk(pk, 20)
    redo = run_campaign_chunk(pk, 0, redelivered=True)
    # Then its range is written once by the redo, and another copy finds nothing to write
    assert len(redo.to_dispatch) == 10 and redo.fresh
    assert run_campaign_chunk(pk, 0, redelivered=False).to_dispatch == []
    final = counts(tenant, campaign_id)
    assert (final["state"], final["queued"], final["pending"]) == ("COMPLETED", 30, 0)
    assert message_count() == 30


def test_a_batch_whose_record_transaction_lost_its_connection_records_every_answer_once(
        tenant: Tenant, hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from providers.simulated import ledger_counts
    from schema.models import Message
    from tasks.campaigns import run_campaign_chunk
    from worker.db import session_scope
    from worker.policy import dispatch_batch as batches
    from worker.sending import provider_bulk_sender, provider_sender
    from worker.settings import get_settings

    # Given five queued campaign messages
    contacts = numbers(5)
    opt_in_all(tenant, contacts)
    campaign_id = send(sms(tenant, to=contacts, type="MKT"))["campaign"]["campaignId"]
    ids = [mid for mid, _, _ in run_campaign_chunk(campaign_row(campaign_id).id, 0).to_dispatch]
    # And a database that drops the connection of the first transaction recording the batch's answers
    original, attempts = batches._record_sent, [0]

    def dropped_once(session: Session, pairs: Any) -> set[str]:
        attempts[0] += 1
        if attempts[0] == 1:
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return original(session, pairs)

    monkeypatch.setattr("worker.policy.dispatch_batch._record_sent", dropped_once)
    # When the batch is dispatched
    settings = get_settings()
    outcome = batches.dispatch_batch(ids, settings, provider_sender(settings), redelivered=False,
                                     bulk=provider_bulk_sender(settings))
    # Then the answers were recorded on the second attempt, and each message was sent once
    assert attempts[0] == 2 and outcome.steps == {"SENT": 5}
    with session_scope() as session:
        assert set(session.scalars(select(Message.status).where(Message.id.in_(ids)))) <= {"SENT", "DELIVERED"}
    calls = ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"])
    assert {mid: calls.get(mid, 0) for mid in ids} == dict.fromkeys(ids, 1)
