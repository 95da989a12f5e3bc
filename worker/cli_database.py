"""What `hexavox` commands say about the database: what a migration did, and one line instead of a traceback.

A new operator's first commands meet the database first: ``hexavox status`` with no environment
used to create an empty SQLite file and print a traceback, and ``hexavox db upgrade`` against a
database that does not exist printed 129 lines. Here each such case is one line that says what to
do, and a migration says which revision it started from and ended at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from worker.settings import Settings

__all__ = ["DatabaseProblem", "shown_url", "require_existing_database", "explain", "migrate"]


class DatabaseProblem(Exception):
    """The database cannot be used as it is; the message is the one line the operator reads."""


def shown_url(url: str) -> str:
    """The URL as it may be printed: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find either
        return "(unreadable URL)"


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def require_existing_database(settings: Settings) -> None:
    """Refuse to open a SQLite file that is not there (SQLite would create it empty, and the command fail)."""
    path = _sqlite_path(settings.database_url)
    if path is None or path.exists():
        return
    raise DatabaseProblem(
        f"no database at {path}: set HEXAVOX_DATABASE_URL to the service's database (unset, it is this SQLite file "
        "under HEXAVOX_DATA_DIR; the demo's is HEXAVOX_DATA_DIR=.hexavox/demo), or run `hexavox db upgrade` to "
        "create it")


def explain(err: DBAPIError, url: str) -> str:
    """One line for a database error met by an operator command, naming what to do next."""
    first = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err).splitlines()[0]
    where = shown_url(url)
    missing_table = "no such table" in first or "does not exist" in first and "relation" in first
    if isinstance(err, ProgrammingError | OperationalError) and missing_table:
        return f"the database at {where} has no hexavox tables yet: run `hexavox db upgrade` ({first})"
    if isinstance(err, OperationalError):
        return (f"cannot open the database at {where}: {first}. Check HEXAVOX_DATABASE_URL; a database that does "
                "not exist yet must be created first (e.g. `createdb NAME`), then `hexavox db upgrade`")
    return f"database error at {where}: {first}"


def migrate(action: str, url: str, run: Callable[[], None], current: Callable[[], str | None]) -> str:
    """Run a migration and say what it did: the revision before and after, or that there was nothing to do."""
    before = current()
    run()
    after = current()
    where = shown_url(url)
    if before == after:
        return f"database {where} is already at {_name(after)}: nothing to {action}"
    head = " (the newest)" if action == "upgrade" else ""
    return f"database {where} {action}d from {_name(before)} to {_name(after)}{head}"


def _name(revision: str | None) -> str:
    return f"revision {revision}" if revision else "no revision (empty schema)"
