"""Extra copies of dispatch work, and when the outbox relay makes them (docs/reliability.md R5, R8).

* A job redelivered after its worker died between the intake commit and the publish has its QUEUED messages
  published again at once.
* The relay re-publishes at once what was QUEUED before a Redis broker lost its queues (its epoch marker is
  gone); otherwise only what waited the long stale delay, so a backlog that is merely slow is not multiplied.
* A fresh copy that finds its message DISPATCHING leaves it alone; only a redelivered copy concludes that a
  worker died mid-send and hands the message to reconcile.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import redis
from sqlalchemy import update

from schema.models import Message
from schema.states import MessageState
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.policy.dispatch import DispatchStep, dispatch_message
from worker.policy.transitions import transition, utcnow
from worker.publish import BROKER_EPOCH_KEY
from worker.runner import run_send_job
from worker.sending import provider_sender
from worker.settings import get_settings

from factories import Tenant, make_merchant, make_tenant, sms


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant)
    return tenant


def status_of(message_id: str) -> str:
    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


def test_a_redelivered_intake_job_publishes_its_still_queued_messages_again(tenant: Tenant) -> None:
    # Given a job whose two messages were committed QUEUED, one of them since dispatched
    request_id = str(uuid.uuid4())
    first = run_send_job("hexavox.sms.send.v1", sms(tenant, to=["+18135551234", "+18135551235"]), request_id)
    sent, waiting = (mid for mid, _, _ in first.to_dispatch)
    settings = get_settings()
    assert dispatch_message(sent, settings, provider_sender(settings)) == DispatchStep.SENT

    # When the broker gives the same job back (same request id), and a client retries it under a new id
    again = run_send_job("hexavox.sms.send.v1", sms(tenant, to=["+18135551234", "+18135551235"]), request_id)

    # Then it answers as before and hands back to dispatch only the message still QUEUED
    assert again.result == first.result
    assert [mid for mid, _, _ in again.to_dispatch] == [waiting]


def test_the_relay_copies_quickly_only_after_the_broker_lost_its_queues(tenant: Tenant,
                                                                        hexavox_env: dict[str, str]) -> None:
    from tasks.maintenance import relay_outbox

    # Given a message QUEUED for a minute (well short of the 10 min stale delay)
    outcome = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4()))
    [(mid, _, _)] = outcome.to_dispatch
    broker = redis.Redis.from_url(hexavox_env["HEXAVOX_BROKER_URL"])

    def age_it() -> None:
        with session_scope() as session:
            session.execute(update(Message).where(Message.id == mid)
                            .values(updated_at=utcnow() - dt.timedelta(seconds=60)))

    age_it()
    # and a broker that has kept its queues for an hour
    broker.set(BROKER_EPOCH_KEY, (utcnow() - dt.timedelta(hours=1)).isoformat())

    # When the relay runs, Then it copies nothing
    assert relay_outbox() == 0

    # When the broker loses everything (restart without persistence) and the relay runs, Then it copies it,
    # once: the copy is part of the new epoch
    broker.flushdb()
    assert relay_outbox() == 1 and broker.exists(BROKER_EPOCH_KEY)
    assert relay_outbox() == 0
    # And a message QUEUED past the stale delay is copied even when the broker kept its queues
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == mid)
                        .values(updated_at=utcnow() - dt.timedelta(seconds=get_settings().outbox_stale + 1)))
    assert relay_outbox() == 1


def test_after_a_broker_loss_the_relay_copies_what_was_queued_before_it_not_what_was_published_since(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    import time

    from tasks.maintenance import relay_outbox
    from worker.publish import publish_dispatch

    def accept(first: int, count: int) -> list[DispatchItem]:
        numbers = [f"+1813555{n}" for n in range(first, first + count)]
        return run_send_job("hexavox.sms.send.v1", sms(tenant, to=numbers), str(uuid.uuid4())).to_dispatch

    # Given 5 messages published before Redis lost its queues (nobody consumes them)
    assert publish_dispatch(accept(1000, 5)) == 5
    redis.Redis.from_url(hexavox_env["HEXAVOX_BROKER_URL"]).flushdb()
    time.sleep(1.1)  # the publishing process looks at the epoch marker at most once a second
    # When one message is published just after the loss, and 20 more well after it, before the relay's next pass
    assert publish_dispatch(accept(2000, 1)) == 1
    time.sleep(1.5)
    assert publish_dispatch(accept(3000, 20)) == 20
    # Then the relay copies the 5 lost ones and the one that began the new epoch, not the 20 safely queued since
    assert relay_outbox() == 6
    assert relay_outbox() == 0


@pytest.mark.parametrize(("redelivered", "step", "after"), [
    (False, DispatchStep.SKIPPED, MessageState.DISPATCHING),
    (True, DispatchStep.REDELIVERED, MessageState.AMBIGUOUS),
])
def test_a_copy_that_finds_its_message_dispatching(tenant: Tenant, redelivered: bool, step: DispatchStep,
                                                   after: MessageState) -> None:
    # Given a message a worker has claimed and is sending
    [(mid, _, _)] = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4())).to_dispatch
    with session_scope() as session:
        assert transition(session, mid, [MessageState.QUEUED], MessageState.DISPATCHING)

    # When another copy of its dispatch task arrives
    settings = get_settings()
    found = dispatch_message(mid, settings, provider_sender(settings), redelivered=redelivered)

    # Then a fresh copy leaves it to the first; a redelivered one hands it to reconcile
    assert found == step and status_of(mid) == after.value


def test_a_broker_that_cannot_be_asked_is_not_taken_for_one_that_lost_its_queues() -> None:
    from worker.publish import broker_epoch

    # Nothing listens on port 1: the relay must fall back to its stale delay, not copy every QUEUED message
    assert broker_epoch("redis://127.0.0.1:1/0") is None
    assert broker_epoch("amqp://guest:guest@127.0.0.1:5672//") is None  # RabbitMQ keeps its queues
