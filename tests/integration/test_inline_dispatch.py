"""Inline dispatch (worker.inline_dispatch): one OTP/TXN message sent by its intake job after the commit.

Whatever happens between the intake commit and the inline send (the process dies, the relay copies the outbox row,
the broker redelivers the intake job), the provider gets the message at most once.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from providers.base import OutboundMessage, SendResult
from schema.models import Message
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.inline_dispatch import dispatch_inline
from worker.policy.dispatch import DispatchStep, dispatch_message
from worker.policy.outbox import stale_queued
from worker.policy.transitions import utcnow
from worker.runner import run_send_job
from worker.sending import provider_sender
from worker.settings import Settings, get_settings

from factories import Tenant, make_merchant, make_tenant, sms

SEND = "hexavox.sms.send.v1"


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant)
    return tenant


def calls(message_id: str) -> int:
    from providers.simulated import ledger_counts

    return ledger_counts(get_settings().database_url).get(message_id, 0)


def status_of(message_id: str) -> str:
    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


def relay_copies() -> list[str]:
    """What the outbox relay would publish now (every QUEUED row, whatever its age)."""
    return [mid for mid, _, _ in stale_queued(utcnow() + dt.timedelta(seconds=1))]


def inline(settings: Settings, request_id: str, payload: dict[str, object], *, redelivered: bool
           ) -> tuple[str, list[DispatchItem]]:
    """One delivery of the intake job: commit, then inline dispatch; returns the message id and what is queued."""
    outcome = run_send_job(SEND, payload, request_id)
    left = dispatch_inline(outcome.result, outcome.to_dispatch, settings, lambda: provider_sender(settings),
                           redelivered=redelivered)
    return outcome.result["messages"][0]["messageId"], left


@pytest.mark.parametrize("kind", ["OTP", "TXN"])
def test_one_otp_or_txn_is_sent_by_its_intake_job_and_nothing_is_queued(tenant: Tenant, kind: str) -> None:
    settings = get_settings()
    message_id, left = inline(settings, str(uuid.uuid4()), sms(tenant, type=kind), redelivered=False)
    assert left == [] and status_of(message_id) == "SENT" and calls(message_id) == 1
    # A late copy (the relay's, or a dispatch task published anyway) finds it sent and does nothing
    assert dispatch_message(message_id, settings, provider_sender(settings), redelivered=False) == DispatchStep.SKIPPED
    assert relay_copies() == [] and calls(message_id) == 1


def test_several_messages_or_marketing_go_to_the_dispatch_queue_as_before(tenant: Tenant) -> None:
    settings = get_settings()
    two = run_send_job(SEND, sms(tenant, to=["+18135551234", "+18135551235"]), str(uuid.uuid4()))
    assert dispatch_inline(two.result, two.to_dispatch, settings, lambda: provider_sender(settings),
                           redelivered=False) == two.to_dispatch
    mkt = run_send_job(SEND, sms(tenant, type="MKT", body="Sale STOP to opt out"), str(uuid.uuid4()))
    assert dispatch_inline(mkt.result, mkt.to_dispatch, settings, lambda: provider_sender(settings),
                           redelivered=False) == mkt.to_dispatch
    assert all(status_of(mid) == "QUEUED" for mid, _, _ in [*two.to_dispatch, *mkt.to_dispatch])


def test_death_between_commit_and_inline_send_is_covered_by_the_relay_and_sent_once(tenant: Tenant) -> None:
    # Given an intake job whose process died right after its commit (no inline send, no publish)
    settings = get_settings()
    request_id, payload = str(uuid.uuid4()), sms(tenant, type="OTP", body="Your code is 123456")
    outcome = run_send_job(SEND, payload, request_id)
    (message_id, _, _), = outcome.to_dispatch
    # When the outbox relay publishes it and that dispatch task sends it
    assert relay_copies() == [message_id]
    assert dispatch_message(message_id, settings, provider_sender(settings), redelivered=False) == DispatchStep.SENT
    # And the broker then redelivers the intake job, which tries its inline send again
    _, left = inline(settings, request_id, payload, redelivered=True)
    # Then the provider got it exactly once
    assert left == [] and status_of(message_id) == "SENT" and calls(message_id) == 1


def test_a_redelivered_intake_job_sends_what_its_dead_copy_never_claimed(tenant: Tenant) -> None:
    settings = get_settings()
    request_id, payload = str(uuid.uuid4()), sms(tenant, type="OTP", body="Your code is 654321")
    run_send_job(SEND, payload, request_id)  # committed; the process died before the inline claim
    message_id, left = inline(settings, request_id, payload, redelivered=True)
    assert left == [] and status_of(message_id) == "SENT" and calls(message_id) == 1
    assert relay_copies() == []


def test_death_during_the_inline_send_hands_the_message_to_reconcile_never_resent(tenant: Tenant) -> None:
    # Given an inline send whose process died after the claim, while the request was with the provider
    settings = get_settings()
    request_id, payload = str(uuid.uuid4()), sms(tenant, type="TXN")

    def dies(_message: OutboundMessage, _names: list[str]) -> SendResult:
        raise SystemExit("the worker died mid-send")

    outcome = run_send_job(SEND, payload, request_id)
    with pytest.raises(SystemExit):
        dispatch_inline(outcome.result, outcome.to_dispatch, settings, lambda: dies, redelivered=False)
    (message_id, _, _), = outcome.to_dispatch
    assert status_of(message_id) == "DISPATCHING"
    # When the broker redelivers the intake job, and a fresh dispatch copy shows up too
    _, left = inline(settings, request_id, payload, redelivered=True)
    fresh = dispatch_message(message_id, settings, provider_sender(settings), redelivered=False)
    # Then it is AMBIGUOUS (reconcile asks the provider) and no second request was made
    assert left == [] and fresh == DispatchStep.SKIPPED
    assert status_of(message_id) == "AMBIGUOUS" and calls(message_id) == 0


def test_switched_off_everything_goes_to_the_dispatch_queue(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_INLINE_DISPATCH", "false")
    reset_settings()
    settings = get_settings()
    message_id, left = inline(settings, str(uuid.uuid4()), sms(tenant, type="OTP"), redelivered=False)
    assert [mid for mid, _, _ in left] == [message_id] and status_of(message_id) == "QUEUED"
