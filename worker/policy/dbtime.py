"""Database time, so windows and ages agree across hosts whose clocks disagree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["epoch_ms_now", "db_now_ms"]


class epoch_ms_now(FunctionElement[int]):  # noqa: N801 - reads like the SQL function it renders
    """Milliseconds since the epoch by the database's clock (``clock_timestamp()``: not frozen at transaction start)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_ms_now, "postgresql")
def _pg(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"


@compiles(epoch_ms_now, "sqlite")
def _sqlite(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def db_now_ms(session: Session) -> int:
    """The database's clock now, in epoch milliseconds."""
    return int(session.execute(select(epoch_ms_now())).scalar_one())
