"""Many rows into one table with PostgreSQL's COPY, in the session's own transaction.

A campaign chunk writes a thousand messages at once and batch dispatch a history row per message: a multi-row
INSERT renders and binds every value through SQLAlchemy (most of the chunk's Python time), COPY streams them.
Only PostgreSQL has it; elsewhere (SQLite in unit tests) the rows go through an ordinary executemany INSERT.
COPY fills no Python-side column defaults, so every row must name each column without a server default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

__all__ = ["copy_rows"]


def copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Write ``rows`` (all with the same keys) into ``table``; returns how many. Rolled back with the session."""
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return len(rows)
    from psycopg import sql
    from psycopg.types.json import Jsonb

    names = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table.name),
                                                          sql.SQL(", ").join(map(sql.Identifier, names)))
    driver = connection.connection.driver_connection
    assert driver is not None, "a live session connection"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([_adapted(row[name], Jsonb) for name in names])
    return len(rows)


def _adapted(value: Any, jsonb: Any) -> Any:
    """JSON columns take dicts and lists; COPY needs them wrapped as JSONB."""
    return jsonb(value) if isinstance(value, dict | list) else value
