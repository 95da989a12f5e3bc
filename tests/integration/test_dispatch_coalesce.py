"""A deep dispatch queue worked in batches: one dispatch task takes the TXN/MKT messages waiting behind its own.

Each message still reaches the provider exactly once (the simulated provider's ledger is the ground truth), with
fewer claim statements than messages (one claim statement writes one history timestamp for all it took); OTP is
never coalesced; and a worker that dies after a coalesced claim leaves messages that end reconciled, never sent
twice and never stuck.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from factories import Tenant, make_merchant, make_tenant, sms
from support import start_worker

SETTLED = {"SENT", "DELIVERED"}


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """A merchant with room to send; coalescing up to 8 messages that waited at least 0 s."""
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_DISPATCH_COALESCE", "8")
    monkeypatch.setenv("HEXAVOX_DISPATCH_COALESCE_MIN_AGE", "0")
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=10_000)
    return tenant


def _accept(tenant: Tenant, count: int, *, kind: str = "TXN", start: int = 1000) -> list[str]:
    """``count`` messages QUEUED through the real intake, their dispatch not published (the tests run it)."""
    from worker.runner import run_send_job

    ids: list[str] = []
    step = 1 if kind == "OTP" else 100
    for first in range(start, start + count, step):
        numbers = [f"+1813555{n}" for n in range(first, min(first + step, start + count))]
        to: str | list[str] = numbers[0] if kind == "OTP" else numbers
        body = "Your code is 123456" if kind == "OTP" else "Class moved to 6 pm"
        result = run_send_job("hexavox.sms.send.v1", sms(tenant, to=to, type=kind, body=body),
                              str(uuid.uuid4())).result
        ids += [row["messageId"] for row in result["messages"] if row["status"] == "QUEUED"]
    assert len(ids) == count
    return ids


def _states(ids: list[str]) -> dict[str, str]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return dict(session.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).tuples().all())


def _claim_statements(ids: list[str]) -> int:
    """How many claim statements took these messages: each writes one moment on all the history rows it claims."""
    from schema.models import MessageEvent
    from worker.db import session_scope

    with session_scope() as session:
        return int(session.scalar(select(func.count(func.distinct(MessageEvent.at)))
                                  .where(MessageEvent.message_id.in_(ids), MessageEvent.from_state == "QUEUED",
                                         MessageEvent.to_state == "DISPATCHING")) or 0)


def _calls(database_url: str, ids: list[str]) -> dict[str, int]:
    from providers.simulated import ledger_counts

    counts = ledger_counts(database_url)
    return {mid: counts.get(mid, 0) for mid in ids}


def _run_task(message_id: str, queue: str) -> str:
    """The dispatch task as a worker taking it from ``queue`` runs it (its queue decides whether it may coalesce)."""
    from tasks.dispatch import dispatch

    return str(dispatch.apply(args=[message_id], routing_key=queue).get())


def test_a_deep_txn_queue_is_sent_once_each_with_one_claim_per_batch(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    # Given 20 TXN messages waiting QUEUED, their dispatch tasks still to run, coalescing up to 8
    ids = _accept(tenant, 20)
    # When each message's own task runs, in order, from the transactional dispatch queue
    steps = Counter(_run_task(mid, "dispatch.transactional") for mid in ids)
    # Then every message reached the provider exactly once and is settled
    assert _calls(hexavox_env["HEXAVOX_DATABASE_URL"], ids) == dict.fromkeys(ids, 1)
    assert set(_states(ids).values()) <= SETTLED
    # And 3 claim statements took all 20 (8 a claim), whose tasks answer for their own message only
    assert _claim_statements(ids) == math.ceil(20 / 8) == steps["SENT"]
    # And the other tasks found their message taken and did nothing
    assert steps["SKIPPED"] == 20 - steps["SENT"]


def test_otp_is_never_coalesced_and_a_txn_task_never_takes_otp(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    # Given 4 OTP and 4 TXN messages waiting QUEUED
    otps = _accept(tenant, 4, kind="OTP")
    txns = _accept(tenant, 4, start=2000)
    # When an OTP task runs from the OTP queue, and another even from a coalescing queue
    assert _run_task(otps[0], "dispatch.otp") == "SENT"
    assert _run_task(otps[1], "dispatch.transactional") == "SENT"
    # Then each sent only its own message
    states = _states(otps + txns)
    assert [states[mid] for mid in otps[2:] + txns] == ["QUEUED"] * 6
    # When a TXN task runs
    assert _run_task(txns[0], "dispatch.transactional") == "SENT"
    # Then it took the waiting TXN messages, and no OTP
    states = _states(otps + txns)
    assert {states[mid] for mid in txns} <= SETTLED
    assert [states[mid] for mid in otps[2:]] == ["QUEUED"] * 2
    assert _claim_statements(txns) == 1
    assert _calls(hexavox_env["HEXAVOX_DATABASE_URL"], otps + txns) == {**dict.fromkeys(otps[:2], 1),
                                                                        **dict.fromkeys(otps[2:], 0),
                                                                        **dict.fromkeys(txns, 1)}


def test_a_fresh_message_stays_with_its_own_task(
        tenant: Tenant, hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    # Given TXN messages that have waited less than the minimum age
    monkeypatch.setenv("HEXAVOX_DISPATCH_COALESCE_MIN_AGE", "60")
    reset_settings()
    ids = _accept(tenant, 3)
    # When the first one's task runs
    assert _run_task(ids[0], "dispatch.transactional") == "SENT"
    # Then it sent its own message alone
    states = _states(ids)
    assert [states[mid] for mid in ids[1:]] == ["QUEUED", "QUEUED"]


class Died(BaseException):
    """The worker process dying at a crash point (the real hook exits the process; a test cannot)."""


def _die_coalescing(monkeypatch: pytest.MonkeyPatch, first: str, point: str) -> None:
    """A worker that claims ``first`` with the messages waiting behind it and dies at ``point``."""
    from worker.policy import dispatch_batch
    from worker.policy.coalesce import coalesce_dispatch
    from worker.sending import provider_bulk_sender, provider_sender
    from worker.settings import get_settings

    def crash(_settings: object, at: str) -> None:
        if at == point:
            raise Died(at)

    settings = get_settings()
    with monkeypatch.context() as patch:
        patch.setattr(dispatch_batch, "crash_if", crash)
        with pytest.raises(Died):
            coalesce_dispatch(first, settings, provider_sender(settings), bulk=provider_bulk_sender(settings))


def _redelivered(message_id: str) -> str:
    """The message's own task as the broker gives it back after its worker died (marked redelivered)."""
    from types import SimpleNamespace
    from typing import Any, cast

    from tasks.dispatch import _dispatch
    from worker.sending import provider_sender
    from worker.settings import get_settings

    task = SimpleNamespace(request=SimpleNamespace(
        delivery_info={"routing_key": "dispatch.transactional", "redelivered": True}, retries=0))
    settings = get_settings()
    return _dispatch(cast(Any, task), message_id, settings, provider_sender(settings), coalesce=True).value


def _settle(ids: list[str], sent_before: int) -> None:
    """Reconcile as beat runs it; the provider's ledger decides: settled, or queued again and then sent once."""
    from tasks.maintenance import reconcile_sweep
    from worker.policy.dispatch import dispatch_message
    from worker.sending import provider_sender
    from worker.settings import get_settings

    reconcile_sweep()
    states = _states(ids)
    if sent_before:  # the provider has them: settled from its answer, never sent again
        assert set(states.values()) <= SETTLED, states
        return
    assert set(states.values()) == {"QUEUED"}, states  # the provider proves it never got them
    settings = get_settings()
    for mid in ids:
        dispatch_message(mid, settings, provider_sender(settings), redelivered=False)
    assert set(_states(ids).values()) <= SETTLED


@pytest.mark.parametrize("point", ["before_provider_call", "after_provider_call"])
def test_a_worker_dying_after_a_coalesced_claim_hands_the_whole_batch_to_reconcile_on_redelivery(
        tenant: Tenant, hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    database_url = hexavox_env["HEXAVOX_DATABASE_URL"]
    ids = _accept(tenant, 8)
    # Given a worker that claimed all 8 in one coalesced claim and died at the crash point
    _die_coalescing(monkeypatch, ids[0], point)
    assert set(_states(ids).values()) == {"DISPATCHING"}
    sent_before = 1 if point == "after_provider_call" else 0
    assert _calls(database_url, ids) == dict.fromkeys(ids, sent_before)
    # When its task is redelivered
    assert _redelivered(ids[0]) == "REDELIVERED"
    # Then every message of its claim is AMBIGUOUS at once, none sent again
    assert set(_states(ids).values()) == {"AMBIGUOUS"}
    # And the others' own tasks, fresh copies, do nothing
    assert {_run_task(mid, "dispatch.transactional") for mid in ids[1:]} == {"SKIPPED"}
    assert _calls(database_url, ids) == dict.fromkeys(ids, sent_before)
    # And reconcile settles every one from the provider's answer: each reached the provider exactly once
    _settle(ids, sent_before)
    assert _calls(database_url, ids) == dict.fromkeys(ids, 1)


def test_a_coalesced_batch_whose_task_is_lost_is_taken_over_by_the_stale_sweep(
        tenant: Tenant, hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from schema.models import Message, MessageEvent
    from tasks.maintenance import reconcile_sweep
    from worker.db import session_scope
    from worker.settings import get_settings

    settings = get_settings()
    database_url = hexavox_env["HEXAVOX_DATABASE_URL"]
    ids = _accept(tenant, 8)
    # Given a worker that died after the provider took a coalesced batch, its task lost with it (never redelivered)
    _die_coalescing(monkeypatch, ids[0], "after_provider_call")
    # When the coalesced messages' own tasks run as fresh copies
    assert {_run_task(mid, "dispatch.transactional") for mid in ids} == {"SKIPPED"}
    # Then none is sent again, and they wait DISPATCHING: a live claimer may still be recording
    assert _calls(database_url, ids) == dict.fromkeys(ids, 1)
    assert set(_states(ids).values()) == {"DISPATCHING"}
    reconcile_sweep()
    assert set(_states(ids).values()) == {"DISPATCHING"}
    # When time passes beyond any live task's life (task time limit + provider timeout + margin) and beat sweeps
    stale = settings.task_time_limit + settings.provider_timeout + 16
    with session_scope() as session:
        session.execute(update(Message).where(Message.id.in_(ids), Message.status == "DISPATCHING")
                        .values(updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=stale)))
    reconcile_sweep()  # takes the stale ones over (AMBIGUOUS); the next tick asks the provider
    # Then every one was taken over as AMBIGUOUS and is settled from the provider's answer, sent once only
    with session_scope() as session:
        adopted = set(session.scalars(select(MessageEvent.message_id).where(
            MessageEvent.message_id.in_(ids), MessageEvent.from_state == "DISPATCHING",
            MessageEvent.to_state == "AMBIGUOUS")))
    assert adopted == set(ids)
    _settle(ids, 1)
    assert _calls(database_url, ids) == dict.fromkeys(ids, 1)


@pytest.mark.timeout(90)
def test_a_real_worker_drains_a_deep_queue_in_batches(
        tenant: Tenant, hexavox_env: dict[str, str], tmp_path: Path) -> None:
    from worker.publish import publish_dispatch
    from worker.runner import run_send_job

    # Given 40 TXN messages whose dispatch tasks wait in the broker
    numbers = [f"+1813555{n}" for n in range(1000, 1040)]
    outcome = run_send_job("hexavox.sms.send.v1", sms(tenant, to=numbers), str(uuid.uuid4()))
    ids = [row["messageId"] for row in outcome.result["messages"]]
    assert publish_dispatch(outcome.to_dispatch) == 40
    # When a worker drains the transactional dispatch queue
    worker = start_worker({**hexavox_env, "HEXAVOX_DISPATCH_COALESCE": "8", "HEXAVOX_DISPATCH_COALESCE_MIN_AGE": "0"},
                          tmp_path / "worker.log", queues="dispatch.transactional", pool="threads", concurrency=4)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not set(_states(ids).values()) <= SETTLED:
            time.sleep(0.2)
    finally:
        worker.stop()
    # Then each message reached the provider exactly once, with far fewer claims than messages
    assert set(_states(ids).values()) <= SETTLED, worker.log()[-2000:]
    assert _calls(hexavox_env["HEXAVOX_DATABASE_URL"], ids) == dict.fromkeys(ids, 1)
    assert _claim_statements(ids) <= 40 // 4, _claim_statements(ids)
