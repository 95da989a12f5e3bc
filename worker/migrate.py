"""Run the Alembic migrations shipped in schema/migrations from code (`hexavox db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from worker.db import engine, normalize_url
from worker.db_roles import grant_runtime
from worker.settings import get_settings

__all__ = ["alembic_config", "upgrade_head", "downgrade_base", "current_revision"]


def alembic_config(url: str | None = None) -> Config:
    settings = get_settings()
    _ensure_data_dir()
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "schema" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url or settings.database_url))
    return cfg


def _ensure_data_dir() -> None:
    """The embedded SQLite file's folder; SQLite creates the file but not the folder."""
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)


def upgrade_head(url: str | None = None) -> None:
    """Migrate as the owner role (HEXAVOX_MIGRATION_DATABASE_URL), then grant the runtime role its row rights."""
    settings = get_settings()
    target = url or settings.migration_database_url
    command.upgrade(alembic_config(target), "head")
    if settings.runtime_role and target.startswith(("postgres", "postgresql")):
        with engine(target).begin() as conn:
            grant_runtime(conn, settings.runtime_role)


def downgrade_base(url: str | None = None) -> None:
    command.downgrade(alembic_config(url or get_settings().migration_database_url), "base")


def current_revision(url: str | None = None) -> str | None:
    """The revision the database is at (None: no migration applied), read the way Alembic reads it."""
    from alembic.runtime.migration import MigrationContext

    from worker.db import engine

    _ensure_data_dir()
    with engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
