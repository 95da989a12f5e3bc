"""The foundation: migrations on both databases, a real worker answering and taking a job into the database."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer
from sqlalchemy import create_engine, inspect, select

from support import REPO, WorkerProcess, start_worker

EXPECTED_TABLES = {"tenants", "api_keys", "merchants", "balances", "routes", "consents", "contact_lists",
                   "task_redeliveries", "contact_list_members", "campaigns", "requests", "messages", "message_events",
                   "duplicate_guard", "outbound_callbacks", "alerts", "billing_upgrades", "inbound_events",
                   "usage_periods", "messaging_brands", "messaging_campaigns", "messaging_numbers",
                   "sip_credentials"}


def _alembic(url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "alembic", "-x", f"url={url}", *args], cwd=REPO, check=True,
                   capture_output=True, timeout=120)


def _tables(url: str) -> set[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@contextmanager
def _scratch_database(postgres_server: str) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (not the migrated template), dropped afterwards."""
    import psycopg

    name = f"hxmig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_migrations_go_up_and_down_cleanly_on_postgresql(postgres_server: str) -> None:
    with _scratch_database(postgres_server) as url:
        _alembic(url, "upgrade", "head")
        assert _tables(url) == EXPECTED_TABLES
        _alembic(url, "check")  # models and migrations agree
        _alembic(url, "downgrade", "base")
        assert _tables(url) == set()


def test_migrations_go_up_and_down_cleanly_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hx.db'}"
    _alembic(url, "upgrade", "head")
    assert _tables(url) == EXPECTED_TABLES
    _alembic(url, "check")
    _alembic(url, "downgrade", "base")
    assert _tables(url) == set()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_upgrading_a_database_with_data_keeps_every_row(dialect: str, tmp_path: Path, postgres_server: str) -> None:
    """SQLite batch mode rebuilds tables: with foreign keys enforced that would cascade-delete the history."""
    with ExitStack() as stack:
        # Given a database at the first revision holding a request, a message and its history
        url = (f"sqlite:///{tmp_path / 'old.db'}" if dialect == "sqlite"
               else stack.enter_context(_scratch_database(postgres_server)))
        _alembic(url, "upgrade", "0001")
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        rows = [
            "INSERT INTO requests (id, kind, payload_sha256, status, result) VALUES ('r1', 'k', 'd', 'ACCEPTED', '{}')",
            "INSERT INTO messages (id, request_id, channel, message_type, recipient, sender, subject, body, options, "
            "units, cost_micros, status, freshness, dispatch_attempts, reconcile_attempts) VALUES ('m1', 'r1', 'SMS', "
            "'TXN', '+18135551234', 'GYMA', '', 'hi', '{}', 1, 0, 'DELIVERED', 'FINAL', 1, 0)",
            "INSERT INTO message_events (message_id, to_state, detail) VALUES ('m1', 'DELIVERED', '{}')",
        ]
        with engine.begin() as conn:
            for sql in rows:
                conn.exec_driver_sql(sql)
        engine.dispose()

        # When it is upgraded to head
        _alembic(url, "upgrade", "head")

        # Then every row is still there
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            counts = [conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                      for table in ("requests", "messages", "message_events")]
        engine.dispose()
        assert counts == [1, 1, 1]


def test_a_real_worker_answers_ping(celery_worker: WorkerProcess) -> None:
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "inspect", "ping", "--timeout", "10"],
                            cwd=REPO, env={**__import__("os").environ, **celery_worker.env}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pong" in result.stdout


def test_a_job_goes_through_the_queue_into_the_database(celery_worker: WorkerProcess) -> None:
    # Given a tenant, When a merchant upsert job is published by the client
    from schema.models import Balance, Merchant
    from worker.client import HexavoxClient
    from worker.db import session_scope

    from factories import make_tenant

    tenant = make_tenant()
    client = HexavoxClient(tenant.key_id, tenant.secret)
    request_id = client.submit("hexavox.merchant.upsert.v1", {"merchantId": "gym-a", "displayName": "Gym A",
                                                              "smsLimit": 5000})
    answer = client.result(request_id, timeout=30)
    client.close()
    # Then the worker wrote it to PostgreSQL and answered under the request id
    assert answer["status"] == "ACCEPTED", answer
    assert answer["result"]["limits"]["smsLimit"] == 5000
    with session_scope() as session:
        merchant = session.scalars(select(Merchant).where(Merchant.external_id == "gym-a")).one()
        assert session.get(Balance, (merchant.id, "SMS")).unit_limit == 5000  # type: ignore[union-attr]


def test_a_plain_worker_consumes_every_queue(hexavox_env: dict[str, str], tmp_path: Path) -> None:
    """`celery -A worker worker` with no -Q, as Celery users start it, must not leave OTP or admin jobs unread."""
    from worker.client import HexavoxClient
    from worker.queues import ADMIN, ALL_QUEUES

    from factories import make_tenant

    # Given a worker started without naming any queue
    worker = start_worker(hexavox_env, tmp_path / "plain.log")
    try:
        # When the active queues are asked for and an admin job is sent
        result = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "inspect", "active_queues", "-j",
                                 "--timeout", "10"], cwd=REPO, env={**os.environ, **hexavox_env},
                                capture_output=True, text=True, timeout=60)
        tenant = make_tenant()
        client = HexavoxClient(tenant.key_id, tenant.secret)
        try:
            answer = client.result(client.submit("hexavox.merchant.upsert.v1", {"merchantId": "gym-b",
                                                                                "displayName": "Gym B"}), timeout=30)
        finally:
            client.close()
    finally:
        worker.stop()
    # Then it listens on all of them and the admin job was answered
    assert result.returncode == 0, result.stdout + result.stderr
    consumed = {queue["name"] for queues in json.loads(result.stdout).values() for queue in queues}
    assert consumed == set(ALL_QUEUES) and ADMIN in consumed
    assert answer["status"] == "ACCEPTED", answer


def test_a_pickled_job_is_refused_and_never_executed(celery_worker: WorkerProcess) -> None:
    # Given a tenant, When someone publishes a pickle-serialised merchant upsert straight to the queue
    from schema.models import Merchant
    from worker.db import session_scope

    from factories import make_tenant

    tenant = make_tenant()
    payload = {"auth": tenant.auth, "merchantId": "evil", "displayName": "Evil"}
    body = pickle.dumps(([payload], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
    task_id = str(uuid.uuid4())
    headers = {"lang": "py", "task": "hexavox.merchant.upsert.v1", "id": task_id, "root_id": task_id,
               "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None, "argsrepr": "",
               "kwargsrepr": "", "origin": "attacker", "ignore_result": False}
    with Connection(celery_worker.env["HEXAVOX_BROKER_URL"]) as conn:
        Producer(conn).publish(body, routing_key="admin", exchange=Exchange("admin"), headers=headers,
                               content_type="application/x-python-serialize", content_encoding="binary",
                               declare=[])
    time.sleep(3)
    # Then nothing ran and the worker says why
    with session_scope() as session:
        assert session.scalars(select(Merchant).where(Merchant.external_id == "evil")).first() is None
    assert "application/x-python-serialize" in celery_worker.log() or "ContentDisallowed" in celery_worker.log()


def test_the_shipped_json_schemas_match_the_models() -> None:
    from worker.contract import json_schemas

    folder = REPO / "schema" / "contract"
    shipped = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert shipped == json_schemas(), "run `hexavox contract --write schema/contract`"


def test_the_readme_error_table_is_generated_from_the_catalogue() -> None:
    from worker.catalogue import markdown_table

    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, "run `hexavox catalogue --markdown` and paste it into README.md"


@pytest.mark.parametrize("name", ["SUBMITTED", "DUPLICATE_WITHIN_WINDOW", "INSUFFICIENT_BALANCE"])
def test_every_catalogue_code_has_exactly_one_entry(name: str) -> None:
    from worker.catalogue import CATALOGUE, Code

    assert CATALOGUE[Code[name]].code is Code[name]
    assert len(CATALOGUE) == len(Code)
    assert len({c.value for c in Code}) == len(Code)


@pytest.mark.parametrize("change", [
    {"freshness": "FINAL"},  # a QUEUED message cannot be final
    {"status": "DELIVERED"},  # nor a delivered one provisional
    {"message_type": "PROMO"},
])
def test_the_database_itself_refuses_inconsistent_message_rows(hexavox_env: dict[str, str],
                                                               change: dict[str, str]) -> None:
    import uuid as _uuid

    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from schema.models import Message
    from worker.db import session_scope
    from worker.runner import run_send_job

    from factories import make_merchant, make_tenant, sms

    tenant = make_tenant()
    make_merchant(tenant)
    [row] = run_send_job("hexavox.sms.send.v1", sms(tenant), str(_uuid.uuid4())).result["messages"]
    with pytest.raises(IntegrityError, match="ck_messages_"), session_scope() as session:
        session.execute(update(Message).where(Message.id == row["messageId"]).values(**change))


def test_the_database_refuses_a_history_row_with_an_unknown_state(hexavox_env: dict[str, str]) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from schema.models import MessageEvent
    from worker.db import session_scope

    with pytest.raises(IntegrityError, match="ck_message_events_to_state"), session_scope() as session:
        session.execute(insert(MessageEvent).values(message_id="m", from_state=None, to_state="LOST", detail={}))
