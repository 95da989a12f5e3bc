"""The outbox relay and scheduled release: PostgreSQL says what must be dispatched, the broker may have lost it.

Every accepted message is committed QUEUED (or SCHEDULED) before anything is published. If
the broker loses the dispatch task (Redis restarted without persistence), the message stays
QUEUED; the relay publishes it again. Dispatch claims QUEUED -> DISPATCHING conditionally,
so an extra copy in the queue sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schema.models import Merchant, Message
from schema.states import MessageState
from worker.catalogue import Code
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.errors import Refusal
from worker.policy.consent import require_consent
from worker.policy.transitions import transition, utcnow

__all__ = ["stale_queued", "release_due"]


def stale_queued(cutoff: dt.datetime, limit: int = 1000) -> list[DispatchItem]:
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
    return [DispatchItem(r[0], r[1], r[2]) for r in rows]


def release_due(limit: int = 1000) -> list[DispatchItem]:
    """Scheduled messages whose time has come, moved to QUEUED (each exactly once) for dispatch.

    What may have changed since intake is checked again first: the merchant is still active and the recipient's
    consent now allows it (an OPT_OUT after scheduling wins). A message refused here is FINAL and free.
    """
    c = Message
    with session_scope() as session:
        rows = session.execute(select(c.id, c.channel, c.message_type, c.merchant_id, c.recipient)
                               .where(c.status == MessageState.SCHEDULED.value, c.scheduled_at <= utcnow())
                               .order_by(c.scheduled_at).limit(limit)).all()
        due = []
        for row in rows:
            refusal = _refusal_at_release(session, row)
            if refusal is None:
                if transition(session, row.id, [MessageState.SCHEDULED], MessageState.QUEUED):
                    due.append(DispatchItem(row.id, row.channel, row.message_type))
            else:  # FINAL and free: the move gives its units back
                transition(session, row.id, [MessageState.SCHEDULED], MessageState.REFUSED,
                           error_code=refusal.code.value, error_detail=refusal.detail[:500],
                           detail={"code": refusal.code.value, "why": "checked again at its send time"})
    return due


def _refusal_at_release(session: Session, row: Any) -> Refusal | None:
    merchant = session.get(Merchant, row.merchant_id)
    if merchant is None or not merchant.active:
        return Refusal(Code.MERCHANT_INACTIVE, "merchant is not active", field="merchantId")
    try:
        require_consent(session, row.merchant_id, row.channel, row.recipient, row.message_type)
    except Refusal as refusal:
        return refusal
    return None
