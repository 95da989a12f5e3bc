"""The pooled connections of worker.db: pinged only after sitting idle, replaced quietly when lost meanwhile."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import text

from worker.db import PING_IF_IDLE_SECONDS, engine, session_scope


def backend_pid() -> int:
    with session_scope() as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def test_a_connection_lost_while_idle_is_replaced_before_use(hexavox_env: dict[str, str]) -> None:
    # Given a pooled connection whose backend an operator terminated while it sat idle in the pool
    engine().dispose()
    first = backend_pid()
    with psycopg.connect(hexavox_env["HEXAVOX_DATABASE_URL"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    time.sleep(PING_IF_IDLE_SECONDS + 0.2)
    # When the next transaction checks a connection out, it runs on a new one without an error
    second = backend_pid()
    assert second not in (0, first)
