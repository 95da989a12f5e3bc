"""The queue door when the broker loses jobs: the client publishes again under the same request id, and the
answers outlive the broker because the result backend is PostgreSQL (the default)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from factories import Tenant, make_merchant, make_tenant, sms_job
from support import start_worker


@pytest.fixture
def durable_env(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Answers kept in PostgreSQL (the default result backend), the broker on this test's Redis db."""
    from worker.settings import get_settings, reset_settings

    monkeypatch.delenv("HEXAVOX_RESULT_BACKEND")
    reset_settings()
    env = {key: value for key, value in hexavox_env.items() if key != "HEXAVOX_RESULT_BACKEND"}
    assert get_settings().result_backend.startswith("db+postgresql")
    yield env


@pytest.fixture
def tenant(durable_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    return tenant


@pytest.mark.timeout(180)
def test_a_job_the_broker_lost_is_answered_once_after_the_client_publishes_it_again(
        durable_env: dict[str, str], tenant: Tenant, tmp_path: Path) -> None:
    from schema.models import Message
    from worker.client import HexavoxClient
    from worker.db import session_scope
    from worker.queues import ALL_QUEUES

    broker = redis.Redis.from_url(durable_env["HEXAVOX_BROKER_URL"])
    client = HexavoxClient(tenant.key_id, tenant.secret)
    worker = None
    try:
        # Given a job published while no worker runs, then lost by the broker (restart without persistence)
        payload = sms_job(tenant)
        request_id = client.send_sms(**payload)
        broker.flushdb()
        worker = start_worker(durable_env, tmp_path / "worker.log", queues=",".join(ALL_QUEUES))
        # When the client waits for its answer, publishing it again when none comes in time
        answer = client.answer(request_id, "hexavox.sms.send.v1", payload, timeout=3, attempts=10)
        # Then it is accepted, with one message
        assert answer["status"] == "ACCEPTED", answer
        # And a further copy under the same request id is answered the same and writes nothing more
        client.resubmit(request_id, "hexavox.sms.send.v1", payload)
        again = client.answer(request_id, "hexavox.sms.send.v1", payload, timeout=3, attempts=3)
        assert again["messages"] == answer["messages"]
        # And the answer outlives the broker: it is read back after Redis lost everything again
        broker.flushdb()
        assert client.result(request_id, timeout=5) == answer
    finally:
        client.close()
        if worker is not None:
            worker.stop()
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Message)
                              .where(Message.request_id == request_id)) == 1


@pytest.mark.timeout(180)
def test_a_job_that_ended_without_an_answer_is_published_again(
        durable_env: dict[str, str], tenant: Tenant, tmp_path: Path) -> None:
    from worker.celery_app import app
    from worker.client import HexavoxClient
    from worker.queues import ALL_QUEUES

    client = HexavoxClient(tenant.key_id, tenant.secret)
    worker = start_worker(durable_env, tmp_path / "worker.log", queues=",".join(ALL_QUEUES))
    try:
        # Given a job whose run ended in a failure with no answer (its worker hit the task time limit)
        payload = sms_job(tenant)
        request_id = "4d3c2b1a-0000-4000-8000-000000000001"
        app.backend.mark_as_failure(request_id, RuntimeError("TimeLimitExceeded(300,)"))
        # When the client asks for its answer
        answer = client.answer(request_id, "hexavox.sms.send.v1", payload, timeout=5, attempts=5)
    finally:
        client.close()
        worker.stop()
    # Then it published the job again and got the service's answer
    assert answer["status"] == "ACCEPTED", answer


@pytest.mark.timeout(180)
def test_a_republish_that_finds_the_broker_down_is_tried_again_after_the_next_wait(
        durable_env: dict[str, str], tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from worker.client import HexavoxClient
    from worker.queues import ALL_QUEUES
    from worker.settings import reset_settings

    from faults import PrivateRedis

    # Given a broker of this test's own, which loses the published job and stays down for a few seconds
    broker = PrivateRedis().start()
    monkeypatch.setenv("HEXAVOX_BROKER_URL", broker.url + "/0")
    reset_settings()
    env = {**durable_env, "HEXAVOX_BROKER_URL": broker.url + "/0"}
    client = HexavoxClient(tenant.key_id, tenant.secret)
    workers: list[object] = []

    def come_back() -> None:
        time.sleep(5)
        broker.start()
        workers.append(start_worker(env, tmp_path / "worker.log", queues=",".join(ALL_QUEUES)))

    try:
        payload = sms_job(tenant)
        request_id = client.send_sms(**payload)
        broker.kill()
        returning = threading.Thread(target=come_back)
        returning.start()
        # When the client waits, its first re-publish failing on the dead broker
        answer = client.answer(request_id, "hexavox.sms.send.v1", payload, timeout=2, attempts=30)
        returning.join()
    finally:
        client.close()
        for worker in workers:
            worker.stop()  # type: ignore[attr-defined]
        broker.stop()
    # Then it kept waiting and publishing, and got the answer once the broker was back
    assert answer["status"] == "ACCEPTED", answer
