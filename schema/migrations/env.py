"""Alembic environment: the URL comes from HEXAVOX_MIGRATION_DATABASE_URL (the schema owner; default
HEXAVOX_DATABASE_URL) or ``-x url=...``, the models from schema.models.

SQLite needs batch mode to alter tables, so the same migrations run on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from schema.models import Base
from worker.db import engine, normalize_url
from worker.settings import get_settings

config = context.config
if config.config_file_name is not None:  # the alembic command line: alembic.ini's logging says what ran
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    override = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    return normalize_url(override or get_settings().migration_database_url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True,
                      render_as_batch=_url().startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Batch mode rebuilds a SQLite table by copying it and dropping the old one; with foreign keys enforced
    (worker.db turns them on for every connection) that drop first deletes every row, and ON DELETE CASCADE
    takes the children (message history, callbacks) with it. The pragma only works outside a transaction."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _run(connection: Connection) -> None:
    _configure(connection)
    with _sqlite_foreign_keys_off(connection):
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = _url()
    if url.startswith("sqlite"):
        get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    with engine(url).connect() as conn:
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
