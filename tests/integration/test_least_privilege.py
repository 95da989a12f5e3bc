"""Least privilege: migrations run as the owner, workers as a runtime role that can change rows but not the schema.

``hexavox db upgrade`` with HEXAVOX_RUNTIME_ROLE grants that role SELECT/INSERT/UPDATE/DELETE on every table (and on
tables later migrations add); connected as it, the service takes jobs, while CREATE, DROP, ALTER and TRUNCATE are
refused by PostgreSQL itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from factories import make_merchant, make_tenant, sms


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
def runtime_role(database_url: str) -> Iterator[str]:
    role = f"hx_rt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    yield role
    from worker.db import dispose_engines

    dispose_engines()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")  # its grants and default privileges
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        conn.execute(f"DROP ROLE {role}")


def test_the_runtime_role_changes_rows_but_never_the_schema(hexavox_env: dict[str, str], runtime_role: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.db import dispose_engines
    from worker.migrate import upgrade_head
    from worker.runner import run_send_job
    from worker.settings import reset_settings

    owner_url = hexavox_env["HEXAVOX_DATABASE_URL"]
    runtime_url = as_role(owner_url, runtime_role)
    # Given migrations run as the owner, granting the runtime role
    monkeypatch.setenv("HEXAVOX_MIGRATION_DATABASE_URL", owner_url)
    monkeypatch.setenv("HEXAVOX_RUNTIME_ROLE", runtime_role)
    reset_settings()
    upgrade_head()
    # When the service runs as the runtime role
    monkeypatch.setenv("HEXAVOX_DATABASE_URL", runtime_url)
    reset_settings()
    dispose_engines()
    tenant = make_tenant()
    make_merchant(tenant)
    answer = run_send_job("hexavox.sms.send.v1", sms(tenant), str(uuid.uuid4())).result
    # Then it works, with row rights only
    assert answer["status"] == "ACCEPTED", answer
    engine = create_engine(runtime_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for ddl in ("CREATE TABLE stolen (x int)", "DROP TABLE messages", "TRUNCATE messages",
                    "ALTER TABLE messages ADD COLUMN x int", "CREATE INDEX ix_x ON messages (body)",
                    "UPDATE alembic_version SET version_num = '0000'"):
            with engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied|must be owner"):
                conn.execute(text(ddl))
    finally:
        engine.dispose()
