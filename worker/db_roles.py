"""Least privilege in PostgreSQL: the owner role migrates, the runtime role only reads and writes rows.

Workers and the API connect as a runtime role (HEXAVOX_DATABASE_URL) that can SELECT, INSERT, UPDATE and DELETE
and nothing else: no CREATE, ALTER, DROP or TRUNCATE, so an SQL injection or a stolen worker credential cannot
change the schema or wipe a table in one statement. Migrations run as the owner role
(HEXAVOX_MIGRATION_DATABASE_URL), and :func:`grant_runtime` gives the runtime role (HEXAVOX_RUNTIME_ROLE) its rights
on every table, now and (default privileges) on tables later migrations create.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

__all__ = ["ROLE_NAME", "grant_runtime"]

#: A plain PostgreSQL identifier: the role name is spliced into GRANT statements, so nothing else is accepted.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_runtime(conn: Connection, role: str) -> None:
    """As the schema owner, give ``role`` row rights (DML) on schema ``public`` and take CREATE from everyone else.

    Idempotent: run after every migration (``hexavox db upgrade`` does when HEXAVOX_RUNTIME_ROLE is set).
    """
    if not ROLE_NAME.match(role):
        raise ValueError(f"runtime role {role!r} must be a lower-case PostgreSQL identifier")
    for statement in (
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON TABLE alembic_version FROM {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
    ):
        conn.execute(text(statement))
