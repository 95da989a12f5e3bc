"""Routing: OTP alone on its queue, marketing on bulk, internal work on its own queues."""

from __future__ import annotations

import pytest

from worker.queues import ALL_QUEUES, INTAKE_QUEUES, intake_queue, is_internal_queue, queue_for_message, route_task

cases: tuple[tuple[str, dict[str, object], str], ...] = (
    ("hexavox.sms.send.v1", {"type": "OTP", "to": "+1"}, "otp"),
    ("hexavox.sms.send.v1", {"type": "TXN", "to": "+1"}, "transactional"),
    ("hexavox.sms.send.v1", {"type": "MKT", "to": "+1"}, "bulk"),
    ("hexavox.sms.send.v1", {"type": "TXN", "listId": "vip"}, "bulk"),
    ("hexavox.sms.send.v1", {"type": "TXN", "sms": [{"to": "+1"}]}, "transactional"),
    ("hexavox.sms.send.v1", {"type": "OTP", "sms": [{"to": "+1"}]}, "otp"),  # never behind bulk work
    ("hexavox.sms.send.v1", {"type": "MKT", "sms": [{"to": "+1"}, {"to": "+2"}]}, "bulk"),
    ("hexavox.voice.send.v1", {"type": "REMINDER"}, "voice"),
    ("hexavox.email.send.v1", {"type": "TRANSACTIONAL"}, "email"),
    ("hexavox.email.send.v1", {"type": "MARKETING"}, "bulk"),
    ("hexavox.list.import_csv.v1", {}, "bulk"),
    ("hexavox.alerts.list.v1", {}, "admin"),
    ("hexavox.merchant.upsert.v1", {}, "admin"),
)


@pytest.mark.parametrize(("task", "payload", "queue"), cases)
def test_each_intake_job_goes_to_its_queue(task: str, payload: dict[str, object], queue: str) -> None:
    assert intake_queue(task, payload) == queue
    assert route_task(task, (payload,), {}, {}) == {"queue": queue}


def test_otp_dispatch_never_shares_a_queue_with_marketing() -> None:
    assert queue_for_message("SMS", "OTP") == "dispatch.otp"
    assert queue_for_message("SMS", "MKT") == queue_for_message("EMAIL", "MARKETING") == "dispatch.bulk"
    assert queue_for_message("VOICE", "MKT") == "dispatch.bulk"
    assert queue_for_message("EMAIL", "TRANSACTIONAL") == "dispatch.email"


def test_dispatch_never_shares_a_queue_with_intake() -> None:
    """Tenants publish on intake queues; dispatch has queues of its own, so an intake queue runs intake jobs only."""
    kinds = [("SMS", "OTP"), ("SMS", "TXN"), ("SMS", "MKT"), ("VOICE", "TXN"), ("EMAIL", "TRANSACTIONAL")]
    dispatch = {queue_for_message(channel, kind) for channel, kind in kinds}
    assert dispatch.isdisjoint(INTAKE_QUEUES)
    assert all(is_internal_queue(queue) for queue in dispatch)
    assert not any(is_internal_queue(queue) for queue in INTAKE_QUEUES)


def test_internal_tasks_have_their_own_queues() -> None:
    assert route_task("hexavox.internal.reconcile_sweep", (), {}, {}) == {"queue": "reconcile"}
    assert route_task("hexavox.internal.deliver_callbacks", (), {}, {}) == {"queue": "callbacks"}
    assert route_task("hexavox.internal.dispatch", ("id",), {}, {}) is None  # dispatch names its queue per message
    assert {"reconcile", "callbacks", "otp", "bulk"} <= set(ALL_QUEUES)


@pytest.mark.parametrize(("broker_url", "quorum"), [
    ("amqp://guest:guest@127.0.0.1:5672/hexavox", True),
    ("amqps://user:pw@rabbit:5671/hexavox", True),
    ("redis://127.0.0.1:6379/0", False),
])
def test_rabbitmq_queues_are_quorum_queues_with_publisher_confirms(broker_url: str, quorum: bool) -> None:
    import dataclasses

    from worker.celeryconfig import celery_config
    from worker.settings import load_settings

    config = celery_config(dataclasses.replace(load_settings(), broker_url=broker_url))
    arguments = {queue.name: queue.queue_arguments for queue in config["task_queues"]}
    assert arguments == dict.fromkeys(ALL_QUEUES, {"x-queue-type": "quorum"} if quorum else None)
    assert config["broker_transport_options"].get("confirm_publish", False) is quorum
