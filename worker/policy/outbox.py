"""The outbox relay and scheduled release: PostgreSQL says what must be dispatched, the broker may have lost it.

Every accepted message is committed QUEUED (or SCHEDULED) before anything is published. If
the broker loses the dispatch task (Redis restarted without persistence), the message stays
QUEUED; the relay publishes it again. Dispatch claims QUEUED -> DISPATCHING conditionally,
so an extra copy in the queue sends nothing twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from schema.models import Message
from schema.states import MessageState
from worker.db import session_scope
from worker.policy.transitions import transition, utcnow

__all__ = ["stale_queued", "release_due"]


def stale_queued(cutoff: dt.datetime, limit: int = 1000) -> list[tuple[str, str, str]]:
    """QUEUED messages untouched since ``cutoff``; their clock is reset so the next pass skips them.

    The clock is set past ``cutoff`` too (which may lie a moment ahead: the relay's clock margin after a broker
    epoch began), so a second pass with the same cutoff does not copy them again.
    """
    now = max(utcnow(), cutoff + dt.timedelta(milliseconds=1))
    with session_scope() as session:
        rows = session.execute(select(Message.id, Message.channel, Message.message_type)
                               .where(Message.status == MessageState.QUEUED.value, Message.updated_at <= cutoff)
                               .order_by(Message.updated_at).limit(limit)).all()
        ids = [r[0] for r in rows]
        if ids:
            session.execute(update(Message).where(Message.id.in_(ids), Message.status == MessageState.QUEUED.value)
                            .values(updated_at=now).execution_options(synchronize_session=False))
    return [(r[0], r[1], r[2]) for r in rows]


def release_due(limit: int = 1000) -> list[tuple[str, str, str]]:
    """Scheduled messages whose time has come, moved to QUEUED (each exactly once) for dispatch."""
    with session_scope() as session:
        rows = session.execute(select(Message.id, Message.channel, Message.message_type)
                               .where(Message.status == MessageState.SCHEDULED.value,
                                      Message.scheduled_at <= utcnow())
                               .order_by(Message.scheduled_at).limit(limit)).all()
        due = [(r[0], r[1], r[2]) for r in rows
               if transition(session, r[0], [MessageState.SCHEDULED], MessageState.QUEUED)]
    return due
