"""Message state changes: one conditional UPDATE plus a history row, so concurrent workers never both win.

States only move forward: an update names the states it may leave, and a late or repeated
event that finds the message elsewhere changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from schema.models import Message, MessageEvent
from schema.states import TERMINAL_STATES, Freshness, MessageState

__all__ = ["transition", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def transition(session: Session, message_id: str, from_states: Iterable[MessageState], to_state: MessageState,
               *, detail: dict[str, Any] | None = None, **fields: Any) -> bool:
    """Move ``message_id`` from one of ``from_states`` to ``to_state``; False when it was not in any of them."""
    now = utcnow()
    values: dict[str, Any] = {"status": to_state.value, "updated_at": now, **fields}
    if to_state in TERMINAL_STATES:
        values.update(freshness=Freshness.FINAL.value, final_at=now)
    sources = [s.value for s in from_states]
    result = session.execute(
        update(Message).where(Message.id == message_id, Message.status.in_(sources)).values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(insert(MessageEvent).values(message_id=message_id, from_state=None if len(sources) > 1 else
                                                sources[0], to_state=to_state.value, at=now, detail=detail or {}))
    return True
