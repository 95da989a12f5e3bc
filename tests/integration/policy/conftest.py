"""Policy functions called directly on a real PostgreSQL database: fast enough to run once per mutant.

No Redis, no broker, no worker process. The tests here run one after another in one process, so they
share one database per session and empty its tables after each test: creating and dropping a database
per test costs seconds on a busy machine, emptying a few small tables milliseconds (mutation testing runs these
files once per mutant).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from factories import Tenant, make_merchant, make_tenant
from support import PG_ADMIN_URL


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def policy_database(template_database: str) -> Iterator[str]:
    """One migrated database for every test of this folder."""
    name = f"hxpol_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    from worker.db import dispose_engines

    dispose_engines()
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _empty_tables(url: str) -> None:
    """DELETE, children first: on tables this small it is far cheaper than TRUNCATE's new files."""
    from schema.models import Base

    statements = "; ".join(f"DELETE FROM {table.name}" for table in reversed(Base.metadata.sorted_tables))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statements)


@pytest.fixture
def policy_db(policy_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's settings point at the shared database, emptied before the test."""
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    _empty_tables(policy_database)
    monkeypatch.setenv("HEXAVOX_DATABASE_URL", policy_database)
    reset_settings()
    yield policy_database
    reset_settings()
    dispose_engines()


@pytest.fixture
def tenant(policy_db: str) -> Tenant:
    return make_tenant()


@pytest.fixture
def gym_a(tenant: Tenant) -> int:
    """Merchant 'gym-a': 10 SMS units, 10 voice minutes, 10 emails."""
    return make_merchant(tenant, "gym-a", sms=10, voice=10, email=10)


@pytest.fixture
def gym_b(tenant: Tenant) -> int:
    """A second merchant of the same tenant, with the same limits."""
    return make_merchant(tenant, "gym-b", sms=10, voice=10, email=10)
