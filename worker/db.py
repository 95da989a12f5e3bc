"""Database engines and sessions: one pooled engine per URL per process.

Connect-per-task is ~200x slower than a pooled connection here, so every process keeps one
engine. SQLite (embedded mode) gets WAL, a busy timeout and foreign keys switched on, so
several worker threads can share the file without "database is locked" failures.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from worker.settings import get_settings

__all__ = ["engine", "session_scope", "dispose_engines", "normalize_url", "upsert_insert"]

_engines: dict[tuple[int, str], Engine] = {}
_factories: dict[int, sessionmaker[Session]] = {}
_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured database) in this process."""
    url = normalize_url(url or get_settings().database_url)
    key = (os.getpid(), url)  # a forked pool child must not reuse its parent's sockets
    with _lock:
        if key not in _engines:
            _engines[key] = _create(url)
        return _engines[key]


def _create(url: str) -> Engine:
    """``hide_parameters``: a failed statement's bound values (message bodies, numbers, secrets) stay out of the
    exception text, so they never reach a log line or a Sentry event."""
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    settings = get_settings()
    eng = create_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
                        pool_recycle=1800, hide_parameters=True)
    event.listen(eng, "checkout", _ping_if_idle)
    event.listen(eng, "connect", _mark_used)
    event.listen(eng, "checkin", _mark_used)
    return eng


#: A pooled connection idle longer than this is pinged before use (a restarted server or a terminated backend
#: is then replaced quietly). One in steady use is not: a ping per checkout was a round trip per transaction,
#: about a fifth of a single message's; a connection lost in between fails its statement, which every caller on
#: the message path retries as transient (worker.transient).
PING_IF_IDLE_SECONDS = 1.0


def _mark_used(_dbapi_connection: Any, record: Any) -> None:
    record.info["hexavox_used"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling for idle connections only: DisconnectionError makes the pool reconnect."""
    used = record.info.get("hexavox_used")
    if used is not None and time.monotonic() - used < PING_IF_IDLE_SECONDS:
        return
    try:
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.rollback()  # leave no transaction open: the session begins its own
    except Exception as err:
        raise exc.DisconnectionError("pooled connection lost while idle") from err


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    session = _factory(engine(url))()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _factory(eng: Engine) -> sessionmaker[Session]:
    """One session factory per engine: building a sessionmaker sets up event machinery, too slow per task."""
    factory = _factories.get(id(eng))
    if factory is None or factory.kw.get("bind") is not eng:
        factory = _factories[id(eng)] = sessionmaker(eng, expire_on_commit=False)
    return factory


def dispose_engines() -> None:
    """Close every pooled connection of this process (after fork, or between tests)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
        _factories.clear()


def upsert_insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with ON CONFLICT support for the session's database (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
