"""Reconcile policy (docs/contract.md section 4): what one sweep does with what the provider answers.

* A voice job reserves minutes estimated from its text. When the provider's answer is lost (AMBIGUOUS) and no report
  ever comes, reconcile's lookup is the only place the billed duration arrives: the message must end DELIVERED with
  the real minutes, and the balance must move from the estimate to them exactly once, however many sweeps run.
* A message with no final answer within the maximum age, counted from when it became due, is EXPIRED (E817) and
  costs nothing; a scheduled send is not old because it was booked long ago.
* NOT_FOUND resends only if nothing dispatched the message since it was read; a sweep drains batch after batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from providers.base import OutboundMessage, Provider, ProviderRef
from providers.registry import get_provider, reset_providers
from providers.simulated import SimulatedProvider, ledger_calls
from schema.models import Balance, Message
from schema.states import Channel, MessageState
from worker.db import session_scope
from worker.policy.dispatch import DispatchStep, dispatch_message
from worker.policy.reconcile import backoff, pending_batch, settle, sweep
from worker.policy.transitions import transition, utcnow
from worker.sending import provider_sender
from worker.settings import get_settings, reset_settings

from factories import Tenant, make_merchant, make_tenant, sms

VOICE_TASK = "hexavox.voice.send.v1"
#: 2,860 characters: four started minutes of synthesised speech (900 a minute); a simulated call lasts under one.
LONG_TEXT = "Your appointment at the clinic is tomorrow at nine. " * 55


@pytest.fixture
def lossy_voice(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every call reaches the simulated provider, whose answer is then lost."""
    monkeypatch.setenv("HEXAVOX_SIMULATOR_AMBIGUOUS_RATE", "1")
    reread_settings()
    return hexavox_env


def reread_settings() -> None:
    """After changing the environment: hexavox_env already read the settings, and providers are built once."""
    reset_settings()
    reset_providers()


def providers_for(names: list[str]) -> list[Provider]:
    return [get_provider(name, get_settings()) for name in names]


def voice_call(payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    row: dict[str, Any] = run_send_job(VOICE_TASK, payload, str(uuid.uuid4())).result["messages"][0]
    assert row["status"] == "QUEUED", row
    return row


def used(merchant_id: int, channel: str) -> int:
    with session_scope() as session:
        value = session.scalar(select(Balance.used).where(Balance.merchant_id == merchant_id,
                                                          Balance.channel == channel))
    assert value is not None
    return int(value)


def test_reconcile_settles_an_ambiguous_call_at_its_real_minutes_once(lossy_voice: dict[str, str]) -> None:
    # Given a call reserved at its estimated minutes whose send came back AMBIGUOUS
    tenant = make_tenant()
    merchant_id = make_merchant(tenant, voice=100)
    row = voice_call({"auth": tenant.auth, "merchantId": "gym-a", "to": "+18135551234", "text": LONG_TEXT,
                      "type": "REMINDER"})
    estimate = row["units"]
    assert estimate == math.ceil(len(LONG_TEXT) / 900) and used(merchant_id, "VOICE") == estimate
    settings = get_settings()
    assert dispatch_message(row["messageId"], settings, provider_sender(settings)) == DispatchStep.AMBIGUOUS

    # When reconcile sweeps, more than once
    first, _ = sweep(settings, providers_for)
    again, _ = sweep(settings, providers_for)

    # Then the call is DELIVERED at the minutes the provider bills, and only the difference went back, once
    provider = get_provider("simulated", settings)
    assert isinstance(provider, SimulatedProvider)
    billed = provider.fetch_status(ProviderRef(row["messageId"])).duration_seconds
    assert billed is not None
    minutes = math.ceil(billed / 60)
    with session_scope() as session:
        message = session.get(Message, row["messageId"])
        assert message is not None
        assert (message.status, message.freshness, message.units) == ("DELIVERED", "FINAL", minutes)
    assert minutes < estimate and used(merchant_id, "VOICE") == minutes
    assert (first.settled, again.examined) == (1, 0)
    assert len(ledger_calls(provider.config.ledger_url, row["messageId"])) == 1  # looked up, never resent


# --- expiry, stale answers, batches -------------------------------------------------------------------------------


def sms_job(tenant: Tenant, to: str) -> str:
    from worker.runner import run_send_job

    row = run_send_job("hexavox.sms.send.v1", sms(tenant, to=to), str(uuid.uuid4())).result["messages"][0]
    assert row["status"] == "QUEUED", row
    return str(row["messageId"])


def state(message_id: str) -> tuple[str, str | None]:
    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status, message.error_code


def dispatched(message_id: str) -> DispatchStep:
    settings = get_settings()
    return dispatch_message(message_id, settings, provider_sender(settings))


def lost_before_the_call(message_id: str) -> None:
    """QUEUED -> DISPATCHING -> AMBIGUOUS with no provider call: a worker that died before sending."""
    with session_scope() as session:
        assert transition(session, message_id, [MessageState.QUEUED], MessageState.DISPATCHING)
        assert transition(session, message_id, [MessageState.DISPATCHING], MessageState.AMBIGUOUS)


@pytest.fixture
def no_reports(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The provider takes every message and never reports on it; reconcile asks at once."""
    monkeypatch.setenv("HEXAVOX_SIMULATOR_DLR_DELAY_MS", str(10**9))
    monkeypatch.setenv("HEXAVOX_DLR_GRACE", "0")
    reread_settings()
    return hexavox_env


def test_a_message_with_no_final_answer_expires_e817_and_its_units_go_back(no_reports: dict[str, str],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a SENT message the provider never reports on, past the maximum age
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    mid = sms_job(tenant, "+18135551234")
    assert dispatched(mid) == DispatchStep.SENT and used(merchant_id, "SMS") == 1
    monkeypatch.setenv("HEXAVOX_RECONCILE_MAX_AGE", "0")
    reread_settings()

    # When reconcile sweeps
    counts, resend = sweep(get_settings(), providers_for)

    # Then it is EXPIRED with E817, FINAL, and free
    assert (counts.expired, resend) == (1, [])
    assert state(mid) == ("EXPIRED", "E817") and used(merchant_id, "SMS") == 0


def test_maximum_age_counts_from_the_schedule_not_from_the_booking(no_reports: dict[str, str]) -> None:
    # Given a message booked two days ago for now, sent, and not yet reported on
    tenant = make_tenant()
    make_merchant(tenant)
    mid = sms_job(tenant, "+18135551234")
    now = utcnow()
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == mid)
                        .values(created_at=now - dt.timedelta(days=2), scheduled_at=now))
    assert dispatched(mid) == DispatchStep.SENT

    # When reconcile sweeps with the default maximum age of a day
    counts, _ = sweep(get_settings(), providers_for)

    # Then it waits for its report instead of expiring
    assert (counts.examined, counts.expired) == (1, 0)
    assert state(mid) == ("SENT", None)


def test_a_not_found_answer_about_an_older_attempt_resends_nothing(hexavox_env: dict[str, str]) -> None:
    # Given an AMBIGUOUS message the provider never got, read by a sweep
    tenant = make_tenant()
    make_merchant(tenant)
    mid = sms_job(tenant, "+18135551234")
    lost_before_the_call(mid)
    settings = get_settings()
    [item] = pending_batch(settings, 10)

    # When another dispatch of it happens before this sweep acts on the provider's NOT_FOUND
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == mid)
                        .values(dispatch_attempts=Message.dispatch_attempts + 1))
    outcome = settle(item, providers_for(["simulated"]), settings)

    # Then the stale proof queues nothing: the message waits for the next look
    assert outcome == "unknown" and state(mid) == ("AMBIGUOUS", None)
    [fresh] = pending_batch(settings, 10)
    assert settle(fresh, providers_for(["simulated"]), settings) == "resent" and state(mid) == ("QUEUED", None)


def test_one_sweep_drains_the_backlog_batch_after_batch_and_asks_each_message_once(
        no_reports: dict[str, str]) -> None:
    # Given seven AMBIGUOUS messages that reached the provider
    tenant = make_tenant()
    make_merchant(tenant)
    ids = [sms_job(tenant, f"+1813555{3000 + i}") for i in range(7)]
    with session_scope() as session:
        for mid in ids:
            assert transition(session, mid, [MessageState.QUEUED], MessageState.DISPATCHING)
    provider = get_provider("simulated", get_settings())
    for mid in ids:
        outbound = OutboundMessage(mid, Channel.SMS, "TXN", "+18135551234", "hello")
        assert provider.send(outbound).outcome.value == "ACCEPTED"
        with session_scope() as session:
            assert transition(session, mid, [MessageState.DISPATCHING], MessageState.AMBIGUOUS)

    # When one sweep runs with batches of two and time to spare
    counts, _ = sweep(get_settings(), providers_for, limit=2, budget_seconds=30)

    # Then all seven are settled to SENT, each asked once (a SENT row is not re-read in the same sweep)
    assert (counts.examined, counts.settled) == (7, 7)
    assert {state(mid)[0] for mid in ids} == {"SENT"}
    # And a sweep without a budget takes one batch only (the SENT ones are overdue again at once: grace 0)
    assert sweep(get_settings(), providers_for, limit=2)[0].examined == 2


def test_the_history_keeps_the_providers_raw_answer_without_personal_data(hexavox_env: dict[str, str]) -> None:
    from schema.models import MessageEvent

    # Given a message the simulated provider takes
    tenant = make_tenant()
    make_merchant(tenant)
    mid = sms_job(tenant, "+18135551234")

    # When it is dispatched
    assert dispatched(mid) == DispatchStep.SENT

    # Then its SENT history row carries the provider's answer, identifiers kept, the number masked
    with session_scope() as session:
        detail = session.scalars(select(MessageEvent.detail).where(MessageEvent.message_id == mid,
                                                                   MessageEvent.to_state == "SENT")).one()
        ref = session.get(Message, mid).provider_ref  # type: ignore[union-attr]
    raw = detail["raw"]
    assert raw["provider_ref"] == ref and raw["message_id"] == mid and raw["outcome"] == "accepted"
    assert "8135551234" not in json.dumps(detail)


def test_a_provider_that_times_out_after_the_request_arrived_is_asked_never_sent_again(
        hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a provider slower (800 ms) than the time dispatch waits for it (200 ms)
    monkeypatch.setenv("HEXAVOX_SIMULATOR_LATENCY_MS", "800")
    monkeypatch.setenv("HEXAVOX_PROVIDER_TIMEOUT", "0.2")
    reread_settings()
    tenant = make_tenant()
    make_merchant(tenant)
    mid = sms_job(tenant, "+18135551234")

    # When it is dispatched, its task delivered again, and reconcile sweeps
    assert dispatched(mid) == DispatchStep.AMBIGUOUS
    assert dispatched(mid) == DispatchStep.SKIPPED
    counts, resend = sweep(get_settings(), providers_for)

    # Then the request reached the provider exactly once, and the lookup settled it without a resend
    calls = ledger_calls(get_settings().database_url, mid)
    assert [(c["outcome"], c["attempt"]) for c in calls] == [("accepted", 1)]
    assert (counts.settled, resend) == (1, []) and state(mid) == ("DELIVERED", None)


def test_reconcile_backs_off_a_message_whose_answers_settle_nothing(no_reports: dict[str, str]) -> None:
    # Given a SENT message its provider never reports on
    tenant = make_tenant()
    make_merchant(tenant)
    mid = sms_job(tenant, "+18135551234")
    assert dispatched(mid) == DispatchStep.SENT
    settings = get_settings()

    # When reconcile looks at it, and looks again at once
    first, _ = sweep(settings, providers_for)
    again, _ = sweep(settings, providers_for)

    # Then the second sweep leaves it alone until its backoff has passed, and the wait doubles
    assert (first.unknown, again.examined) == (1, 0)
    time.sleep(backoff(1, settings).total_seconds() + 0.1)
    assert sweep(settings, providers_for)[0].unknown == 1
    with session_scope() as session:
        message = session.get(Message, mid)
        assert message is not None and message.reconcile_attempts == 2 and message.reconcile_after is not None
        wait = message.reconcile_after - message.updated_at
    assert wait == backoff(2, settings) == 2 * backoff(1, settings)


def test_the_backoff_doubles_from_the_grace_period_up_to_its_cap() -> None:
    settings = dataclasses.replace(get_settings(), dlr_grace=60, ambiguous_grace=30, reconcile_max_backoff=3600)
    assert [backoff(n, settings).total_seconds() for n in (1, 2, 3, 7, 8, 40)] == [30, 60, 120, 1920, 3600, 3600]


def test_resends_are_handed_over_batch_by_batch_with_their_lookups_started_afresh(hexavox_env: dict[str, str]) -> None:
    # Given three AMBIGUOUS messages the provider never got, one of them already looked at before
    tenant = make_tenant()
    make_merchant(tenant)
    ids = [sms_job(tenant, f"+1813555{4000 + i}") for i in range(3)]
    for mid in ids:
        lost_before_the_call(mid)
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == ids[0]).values(reconcile_attempts=4))

    # When one sweep takes them two at a time
    batches: list[list[str]] = []
    counts, resend = sweep(get_settings(), providers_for, limit=2, budget_seconds=30,
                           on_resend=lambda items: batches.append([mid for mid, _, _ in items]))

    # Then each batch's resends were handed over when the batch was done, and each starts a fresh backoff
    assert counts.resent == 3 and [len(b) for b in batches] == [2, 1] and sorted(sum(batches, [])) == sorted(ids)
    assert sorted(mid for mid, _, _ in resend) == sorted(ids)
    with session_scope() as session:
        looks = session.execute(select(Message.reconcile_attempts, Message.reconcile_after)
                                .where(Message.id.in_(ids))).all()
    assert set(looks) == {(0, None)}


def test_a_message_whose_provider_is_gone_backs_off_instead_of_stopping_the_sweep(hexavox_env: dict[str, str]) -> None:
    # Given two AMBIGUOUS messages, the first recorded at a provider no longer configured
    tenant = make_tenant()
    make_merchant(tenant)
    gone, fine = sms_job(tenant, "+18135551234"), sms_job(tenant, "+18135551235")
    for mid in (gone, fine):
        lost_before_the_call(mid)
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == gone).values(provider="retired"))

    # When reconcile sweeps, Then it goes on past the first: that one waits (and will expire), the other is resent
    counts, resend = sweep(get_settings(), providers_for)
    assert (counts.examined, counts.unknown, counts.resent) == (2, 1, 1)
    assert [mid for mid, _, _ in resend] == [fine] and state(gone) == ("AMBIGUOUS", None)
