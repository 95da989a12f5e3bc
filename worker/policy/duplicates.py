"""The 10-second duplicate guard (seed 004 code 311): same merchant, recipient and content within the window.

One upsert claims the window only when the previous one has expired by database time. It
runs in the message's own transaction, so a message refused later (quota) releases the
claim, and only the first of a burst is accepted and charged however many workers race.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from schema.models import DuplicateGuard
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal
from worker.policy.dbtime import epoch_ms_now

__all__ = ["content_digest", "claim_window"]


def content_digest(merchant_id: int, channel: str, recipient: str, subject: str, body: str) -> str:
    parts = (str(merchant_id), channel, recipient, subject, body)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def claim_window(session: Session, digest: str, message_id: str, window_seconds: int) -> None:
    """Claim the duplicate window for ``digest`` or refuse with E807."""
    expires = epoch_ms_now() + window_seconds * 1000
    stmt = upsert_insert(session, DuplicateGuard).values(digest=digest, expires_at_ms=expires, message_id=message_id)
    upsert = stmt.on_conflict_do_update(
        index_elements=["digest"],
        set_={"expires_at_ms": stmt.excluded.expires_at_ms, "message_id": stmt.excluded.message_id},
        where=DuplicateGuard.expires_at_ms <= epoch_ms_now(),
    ).returning(DuplicateGuard.message_id)
    if session.execute(upsert).first() is None:
        raise Refusal(Code.DUPLICATE_WITHIN_WINDOW, f"same content to this recipient within {window_seconds}s",
                      field="to")
