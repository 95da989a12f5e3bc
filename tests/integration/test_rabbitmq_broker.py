"""The service on RabbitMQ, the other broker (docs/contract.md section 7): intake answers and dispatch by a real worker.

Each run gets a vhost of its own, so the fixed queue names (otp, transactional, ...) never meet another run's.
Results and throttles stay on this test's Redis db, as in production where RabbitMQ is only the broker.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import make_merchant, make_tenant, sms_job
from faults import rabbitmq_vhost
from support import ensure_service, start_worker


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    problem = ensure_service("rabbitmq")
    if problem:
        pytest.fail(problem, pytrace=False)
    with rabbitmq_vhost("hexavox-test") as url:
        yield url


@pytest.mark.timeout(240)
def test_jobs_are_answered_and_dispatched_over_rabbitmq(hexavox_env: dict[str, str], rabbitmq_url: str,
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from schema.models import Message
    from worker.client import HexavoxClient
    from worker.db import session_scope
    from worker.settings import reset_settings

    # Given a worker whose broker is RabbitMQ (every queue, as `celery -A worker worker` starts it)
    env = {**hexavox_env, "HEXAVOX_BROKER_URL": rabbitmq_url}
    monkeypatch.setenv("HEXAVOX_BROKER_URL", rabbitmq_url)
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant)
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        # When an OTP and a TXN job are published through RabbitMQ
        client = HexavoxClient(tenant.key_id, tenant.secret)
        try:
            answers = [client.result(client.send_sms(**sms_job(tenant, **fields)), timeout=60)
                       for fields in ({"type": "OTP", "body": "Your code is 482913"}, {"to": "+18135551299"})]
        finally:
            client.close()

        # Then both are answered and their messages leave through the provider
        assert [a["status"] for a in answers] == ["ACCEPTED", "ACCEPTED"], answers
        ids = [a["messages"][0]["messageId"] for a in answers]
        deadline, states = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            with session_scope() as session:
                states = list(session.scalars(select(Message.status).where(Message.id.in_(ids))))
            if set(states) <= {"SENT", "DELIVERED"}:
                break
            time.sleep(0.3)
        assert set(states) <= {"SENT", "DELIVERED"} and len(states) == 2, states
        # And every queue of the service is a quorum queue (replicated and fsynced: a job survives a broker restart)
        vhost = rabbitmq_url.rsplit("/", 1)[1]
        listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type"], check=True,
                                capture_output=True, text=True, timeout=60).stdout
        types = dict(line.split()[:2] for line in listed.splitlines()[1:] if line.strip())
        from worker.queues import ALL_QUEUES

        assert {name: types.get(name) for name in ALL_QUEUES} == dict.fromkeys(ALL_QUEUES, "quorum"), listed
    finally:
        worker.stop()
