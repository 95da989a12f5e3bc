"""Transient infrastructure faults met by intake and dispatch: a killed PostgreSQL connection, an unreachable Redis.

Every fault here is real: the backend is terminated with ``pg_terminate_backend`` from another connection (what an
operator, a failover or a pooler restart does), and "Redis down" is a port nothing listens on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from factories import Tenant, make_merchant, make_tenant, sms
from faults import PrivateRedis, free_port


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=1000)
    return tenant


@pytest.fixture
def kill_connection_on(hexavox_env: dict[str, str]) -> Iterator[list[str]]:
    """Terminate the session's own backend the first time it runs a statement on one of the listed tables."""
    from worker.db import engine

    tables: list[str] = []
    killed: list[int] = []
    admin_url = hexavox_env["HEXAVOX_DATABASE_URL"]

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if killed or not any(table in statement for table in tables):
            return
        pid = conn.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killed.append(pid)

    eng = engine()
    event.listen(eng, "before_cursor_execute", before)
    yield tables
    event.remove(eng, "before_cursor_execute", before)
    assert killed, "the fault was never injected"


def test_intake_survives_its_connection_being_killed_mid_transaction(tenant: Tenant,
                                                                      kill_connection_on: list[str]) -> None:
    from worker.runner import run_send_job

    # Given the database connection is terminated (AdminShutdown) when intake claims the duplicate window
    kill_connection_on.append("duplicate_guard")
    # When a send job is run
    outcome = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4()))
    # Then it is accepted on a fresh connection, not refused E103 ("send it again")
    assert outcome.result["status"] == "ACCEPTED", outcome.result
    assert len(outcome.to_dispatch) == 1


def _status(message_id: str) -> str:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


def _calls(hexavox_env: dict[str, str], message_id: str) -> int:
    from providers.simulated import ledger_counts

    return ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"]).get(message_id, 0)


def test_the_providers_answer_is_recorded_through_a_connection_killed_right_after_the_call(
        tenant: Tenant, hexavox_env: dict[str, str], kill_connection_on: list[str]) -> None:
    from providers.base import OutboundMessage, SendResult
    from worker.policy.dispatch import DispatchStep, dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    [(mid, _, _)] = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4())).to_dispatch
    settings = get_settings()
    real = provider_sender(settings)

    def send_then_break_the_connection(message: OutboundMessage, names: list[str]) -> SendResult:
        result = real(message, names)
        kill_connection_on.append("messages")  # the next statement on messages (the record) loses its backend
        return result

    # When the provider accepts and the database connection dies before the answer is written
    step = dispatch_message(mid, settings, send_then_break_the_connection, redelivered=False)
    # Then the answer is written on a new connection: SENT (or DELIVERED), one provider call, nothing left DISPATCHING
    assert step == DispatchStep.SENT
    assert _status(mid) in {"SENT", "DELIVERED"}
    assert _calls(hexavox_env, mid) == 1


def test_a_breaker_whose_redis_dies_after_the_provider_accepted_does_not_lose_the_answer(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    from providers.base import OutboundMessage, SendOutcome, SendResult
    from providers.breaker import RedisBreaker
    from providers.registry import get_provider
    from providers.routing import dispatch_with_failover
    from providers.throttle import LocalThrottle
    from schema.states import Channel
    from worker.settings import get_settings

    server = PrivateRedis().start()
    try:
        real = get_provider("simulated", get_settings())

        class RedisDiesDuringTheCall:
            """The simulated provider, during whose call the breaker's Redis goes away."""

            name, channels, max_rps = real.name, real.channels, real.max_rps

            def send(self, message: OutboundMessage) -> SendResult:
                result = real.send(message)
                server.kill()
                return result

        message = OutboundMessage(message_id=str(uuid.uuid4()), channel=Channel.SMS, message_type="TXN",
                                  recipient="+18135551234", body="hello", sender="GYMA")
        # When the provider accepts and the breaker cannot record it
        result, _ = dispatch_with_failover(message, [RedisDiesDuringTheCall()],  # type: ignore[list-item]
                                           breaker=RedisBreaker(server.url), throttle=LocalThrottle(), max_wait=1)
    finally:
        server.stop()
    # Then the provider's answer still comes back to be recorded
    assert result.outcome == SendOutcome.ACCEPTED and result.provider_ref


def test_a_message_waits_instead_of_crashing_while_the_throttle_redis_is_down(
        tenant: Tenant, hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.policy.dispatch import DispatchStep, dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings, reset_settings

    [(mid, _, _)] = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4())).to_dispatch
    # Given the shared throttle and breaker live on a Redis nobody answers on
    monkeypatch.setenv("HEXAVOX_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_settings()
    settings = get_settings()
    # When dispatch runs
    step = dispatch_message(mid, settings, provider_sender(settings), redelivered=False)
    # Then nothing was sent and the message is QUEUED again, to be retried with backoff (never stuck DISPATCHING)
    assert step == DispatchStep.THROTTLED
    assert _status(mid) == "QUEUED" and _calls(hexavox_env, mid) == 0
    # And once Redis answers again it goes out, once
    monkeypatch.setenv("HEXAVOX_REDIS_URL", hexavox_env["HEXAVOX_REDIS_URL"])
    reset_settings()
    settings = get_settings()
    assert dispatch_message(mid, settings, provider_sender(settings), redelivered=False) == DispatchStep.SENT
    assert _calls(hexavox_env, mid) == 1
