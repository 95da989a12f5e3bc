"""The ``dlrUrl`` callbacks of messages refused in bulk: by a campaign chunk's checks, or by a campaign's cancel.

A refused message is FINAL, so its merchant hears so as for any other FINAL message (see
:func:`worker.policy.transitions.queue_final_callback`, which writes one row at a time). Chunks and cancel refuse
hundreds of messages with one statement, so their callbacks are written the same way: one COPY in the
transaction that refused them, with the very body :func:`worker.policy.transitions.callback_body` signs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from schema.models import OutboundCallback
from schema.states import CallbackState, MessageState
from worker.bulk_copy import copy_rows
from worker.policy.transitions import callback_body

__all__ = ["queue_refused_callbacks"]


def queue_refused_callbacks(session: Session, merchant_id: int, request_id: str, options: dict[str, Any],
                            refused: Sequence[tuple[str, str]], now: dt.datetime) -> int:
    """One callback row per (message id, error code) refused, when the messages carry a ``dlrUrl``; how many.

    The message rows must exist already (a callback references its message); the caller's transaction commits
    both, so a rolled-back chunk or cancel leaves no callback behind.
    """
    url = options.get("dlrUrl")
    if not url or not refused:
        return 0
    status = MessageState.REFUSED
    rows = [{"id": str(uuid.uuid4()), "message_id": message_id, "merchant_id": merchant_id,
             "event_status": status.value, "url": str(url)[:2000], "state": CallbackState.PENDING.value,
             "attempts": 0, "next_attempt_at": now,
             "body": callback_body(message_id, request_id, status, now, code, 0, options)}
            for message_id, code in refused]
    copy_rows(session, cast(Table, OutboundCallback.__table__), rows)
    return len(rows)
