"""Shared fixtures: real PostgreSQL and Redis, one fresh database and Redis db per test, real workers."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from support import (
    PG_ADMIN_URL,
    REDIS_HOST,
    REDIS_PORT,
    WorkerProcess,
    ensure_service,
    kill_leftover_workers,
    start_worker,
)

_redis_dbs = itertools.cycle(range(1, 16))


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def _admin_execute(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = ensure_service("postgresql")
    if problem:
        pytest.fail(problem, pytrace=False)
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def redis_server() -> str:
    problem = ensure_service("redis")
    if problem:
        pytest.fail(problem, pytrace=False)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}"


@pytest.fixture(scope="session")
def template_database(postgres_server: str) -> Iterator[str]:
    """A database migrated once to head; every test clones it (CREATE DATABASE ... TEMPLATE) in ~0.1 s.

    ``HEXAVOX_TEST_TEMPLATE_DB`` names one already migrated (and owned by whoever set it): mutation
    testing runs a whole pytest session per mutant and must not migrate once per mutant.
    """
    given = os.environ.get("HEXAVOX_TEST_TEMPLATE_DB")
    if given:
        yield given
        return
    from alembic import command
    from alembic.config import Config

    name = f"hxtpl_{os.getpid()}"
    _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin_execute(f"CREATE DATABASE {name}")
    cfg = Config(str(Path(__file__).resolve().parent.parent / "alembic.ini"))
    cfg.cmd_opts = None
    cfg.set_main_option("sqlalchemy.url", _pg_url(name).replace("postgresql://", "postgresql+psycopg://"))
    command.upgrade(cfg, "head")
    from worker.db import dispose_engines

    dispose_engines()
    yield name
    _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(template_database: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test only."""
    name = f"hxt_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield _pg_url(name)
    from worker.db import dispose_engines

    dispose_engines()
    _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _claim_redis_db() -> tuple[int, str]:
    """Lease a db number (1-15) in db 0, so concurrent test sessions never flush each other's data."""
    leases = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for _attempt in range(600):
        for db in (next(_redis_dbs) for _ in range(15)):
            if leases.set(f"hexavox-test-lease:{db}", token, nx=True, ex=900):
                leases.close()
                return db, token
        time.sleep(0.5)
    raise RuntimeError("no free Redis db number for this test (all 15 leased by other sessions)")


def _release_redis_db(db: int, token: str) -> None:
    leases = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    if leases.get(f"hexavox-test-lease:{db}") == token.encode():
        leases.delete(f"hexavox-test-lease:{db}")
    leases.close()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis db number of this test's own (leased), flushed before and after."""
    db, token = _claim_redis_db()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    try:
        yield f"{redis_server}/{db}"
    finally:
        client.flushdb()
        client.close()
        _release_redis_db(db, token)


@pytest.fixture
def hexavox_env(database_url: str, redis_url: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point this process's settings at the test's database and Redis db (broker, results, throttles)."""
    env = {
        "HEXAVOX_DATABASE_URL": database_url,
        "HEXAVOX_BROKER_URL": redis_url,
        "HEXAVOX_RESULT_BACKEND": redis_url,
        "HEXAVOX_REDIS_URL": redis_url,
        "HEXAVOX_DATA_DIR": str(tmp_path / "data"),
        "HEXAVOX_VISIBILITY_TIMEOUT": "30",
        "HEXAVOX_TASK_TIME_LIMIT": "20",
        "HEXAVOX_ALLOW_PRIVATE_CALLBACKS": "1",
        # The simulator's ledger is committed before it answers, so a lookup may follow a send at once.
        "HEXAVOX_AMBIGUOUS_GRACE": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _reset()
    yield env
    _reset()


def _reset() -> None:
    from providers.registry import reset_providers
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    reset_settings()
    reset_providers()
    dispose_engines()
    _reconfigure_celery()


def _reconfigure_celery() -> None:
    import sys

    if "worker.celery_app" in sys.modules:  # only once a test has imported it
        from worker.celery_app import reconfigure

        reconfigure()


@pytest.fixture
def celery_worker(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    """A real prefork worker with two processes consuming every queue of this test's broker."""
    from worker.queues import ALL_QUEUES

    worker = start_worker(hexavox_env, tmp_path / "worker.log", queues=",".join(ALL_QUEUES))
    yield worker
    worker.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No worker outlives the session, even when a test failed before stopping its own."""
    kill_leftover_workers()
