"""The simulated provider's ledger: every call it received, committed before it answers.

The ledger is the simulator's memory (how many calls a message made, whether one was accepted, what a lookup
finds) and the proof reliability tests and benchmarks read afterwards: a message with more than one accepted call
was sent twice (docs/reliability.md section 1). It is test equipment, not part of the production schema: its own
MetaData, its table created on first use in the database ``ledger_url`` names. The driver itself is in
providers/simulated.py.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError

from providers.base import DeliveryStatus
from worker import db

__all__ = [
    "LEDGER", "ACCEPTED", "REJECTED", "UNAVAILABLE", "LOST", "DLR_FAILURE_CODE", "ledger_engine", "history",
    "histories", "record", "record_first", "record_many",
    "full_row", "received_calls", "ledger_calls", "ledger_counts", "pending_reports",
    "report_payload", "now_ms", "public_row",
]

#: Provider code of a negative delivery report (handset unreachable, mailbox bounced, call not answered).
DLR_FAILURE_CODE = "SIM-40"

ACCEPTED, REJECTED, UNAVAILABLE, LOST = "accepted", "rejected", "unavailable", "lost"

_metadata = MetaData()
LEDGER = Table(
    "simulator_ledger",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("message_id", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("channel", String(8), nullable=False),
    #: accepted | rejected: the call reached the provider. unavailable: it did NOT (connection refused).
    #: lost: it did NOT either (lost on the way), but the caller only saw a timeout.
    Column("outcome", String(16), nullable=False),
    #: True when the message had already been accepted: an idempotent resend answered with the first ref.
    Column("replay", Boolean, nullable=False, default=False),
    Column("provider_ref", String(64)),
    Column("provider_code", String(16)),
    Column("created_at", BigInteger, nullable=False),  # ms since the epoch
    Column("dlr_status", String(16)),  # DELIVERED | FAILED, decided at send time
    Column("dlr_due_at_ms", BigInteger),
    Index("ix_simulator_ledger_message", "provider", "message_id"),
    Index("ix_simulator_ledger_ref", "provider_ref"),
)


def now_ms() -> int:
    return int(time.time() * 1000)


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row as plain JSON-friendly values (booleans from SQLite come back as ints)."""
    return {k: (bool(v) if k == "replay" and v is not None else v) for k, v in row.items()}


_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_ready_lock = threading.Lock()


def ledger_engine(url: str) -> Engine:
    """The pooled engine for ``url`` (one per process, see worker.db) with the ledger table created once."""
    eng = db.engine(url)
    with _ready_lock:
        if eng not in _ready:
            _create_table(eng)
            _ready.add(eng)
    return eng


def _create_table(eng: Engine) -> None:
    try:
        _metadata.create_all(eng, checkfirst=True)
    except DBAPIError:
        # Another process created it between our check and our CREATE; PostgreSQL reports that race as an error.
        if not inspect(eng).has_table(LEDGER.name):
            raise


def history(eng: Engine, provider: str, message_id: str) -> tuple[int, bool]:
    """How many calls this message made so far, and whether one was accepted."""
    stmt = select(func.count(), func.count(case((LEDGER.c.outcome == ACCEPTED, 1)))).where(
        LEDGER.c.provider == provider, LEDGER.c.message_id == message_id)
    with eng.connect() as conn:
        calls, accepted = conn.execute(stmt).one()
    return int(calls), bool(accepted)


def histories(eng: Engine, provider: str, message_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """:func:`history` of many messages in one query (those with no call yet are left out)."""
    stmt = (select(LEDGER.c.message_id, func.count(), func.count(case((LEDGER.c.outcome == ACCEPTED, 1))))
            .where(LEDGER.c.provider == provider, LEDGER.c.message_id.in_(message_ids)).group_by(LEDGER.c.message_id))
    with eng.connect() as conn:
        return {str(mid): (int(calls), bool(accepted)) for mid, calls, accepted in conn.execute(stmt)}


def record_many(url: str, rows: list[dict[str, Any]]) -> None:
    """Write the calls of one bulk request in one transaction, committed when this returns."""
    with ledger_engine(url).begin() as conn:
        conn.execute(insert(LEDGER), rows)


_COLUMNS = [column for column in LEDGER.columns if column.name != "id"]
#: A message's first call in one statement (no read of its history first): inserted unless the message has a call.
_FIRST = insert(LEDGER).from_select(
    [column.name for column in _COLUMNS],
    select(*[bindparam(column.name, type_=column.type) for column in _COLUMNS]).where(~exists().where(
        LEDGER.c.provider == bindparam("provider"), LEDGER.c.message_id == bindparam("message_id"))),
).returning(LEDGER.c.id)


def full_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every ledger column present (those it leaves out NULL, ``replay`` false)."""
    return {column.name: None for column in _COLUMNS} | {"replay": False} | row


def record_first(url: str, row: dict[str, Any]) -> bool:
    """Write ``row`` (attempt 1) as the message's first call, committed when this returns; False, and nothing
    written, when the message already has a call (its attempt number and replay flag are then not this row's).

    Two concurrent first calls may both write attempt 1, as two concurrent sends may share an attempt number.
    """
    with ledger_engine(url).begin() as conn:
        return conn.execute(_FIRST, full_row(row)).first() is not None


def record(url: str, row: dict[str, Any]) -> None:
    """Write one call in its own transaction, committed when this returns."""
    with ledger_engine(url).begin() as conn:
        conn.execute(insert(LEDGER).values(**row))


def received_calls(url: str, provider: str, provider_ref: str | None, message_id: str) -> list[dict[str, Any]]:
    """The calls that reached ``provider`` (accepted or rejected) for one message, by its reference or our id."""
    where = LEDGER.c.provider_ref == provider_ref if provider_ref else LEDGER.c.message_id == message_id
    stmt = (select(LEDGER).where(LEDGER.c.provider == provider, LEDGER.c.outcome.in_((ACCEPTED, REJECTED)), where)
            .order_by(LEDGER.c.id))
    with ledger_engine(url).connect() as conn:
        return [public_row(dict(row._mapping)) for row in conn.execute(stmt)]


def ledger_calls(url: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """Every recorded call (or those of one message), oldest first, as dicts of the ledger's columns."""
    stmt = select(LEDGER).order_by(LEDGER.c.id)
    if message_id is not None:
        stmt = stmt.where(LEDGER.c.message_id == message_id)
    with ledger_engine(url).connect() as conn:
        return [public_row(dict(row._mapping)) for row in conn.execute(stmt)]


def ledger_counts(url: str, provider: str | None = None) -> dict[str, int]:
    """message_id -> number of ACCEPTED calls (replays included): more than 1 means the message was sent twice."""
    stmt = select(LEDGER.c.message_id, func.count()).where(LEDGER.c.outcome == ACCEPTED).group_by(LEDGER.c.message_id)
    if provider is not None:
        stmt = stmt.where(LEDGER.c.provider == provider)
    with ledger_engine(url).connect() as conn:
        return {message_id: int(count) for message_id, count in conn.execute(stmt)}


def pending_reports(url: str, now_ms: int, provider: str | None = None) -> list[dict[str, Any]]:
    """First acceptances whose delivery report is due by ``now_ms``: what a benchmark would push as callbacks."""
    stmt = (select(LEDGER).where(LEDGER.c.outcome == ACCEPTED, LEDGER.c.replay.is_(False),
                                 LEDGER.c.dlr_due_at_ms <= now_ms).order_by(LEDGER.c.dlr_due_at_ms, LEDGER.c.id))
    if provider is not None:
        stmt = stmt.where(LEDGER.c.provider == provider)
    with ledger_engine(url).connect() as conn:
        return [public_row(dict(row._mapping)) for row in conn.execute(stmt)]


def report_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The callback body (one event) that :meth:`SimulatedProvider.parse_callback` accepts for a ledger row."""
    at = dt.datetime.fromtimestamp(row["dlr_due_at_ms"] / 1000, tz=dt.UTC)
    payload = {"ref": row["provider_ref"], "messageId": row["message_id"], "status": row["dlr_status"],
               "eventId": f"{row['provider_ref']}-dlr", "at": at.isoformat()}
    if row["dlr_status"] == DeliveryStatus.FAILED.value:
        payload["code"] = DLR_FAILURE_CODE
    return payload
