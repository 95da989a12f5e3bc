"""The 10-second duplicate guard (seed 004 code 311): same merchant, recipient and content within the window.

One upsert claims the window only when the previous one has expired by database time. It
runs in the message's own transaction, so a message refused later (quota) releases the
claim, and only the first of a burst is accepted and charged however many workers race.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from sqlalchemy.orm import Session

from schema.models import DuplicateGuard
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal
from worker.policy.dbtime import epoch_ms_now

__all__ = ["content_digest", "claim_window", "waive_rule_applies", "WAIVE_RULE"]

#: The key rule (listed among a key's jobs: ``hexavox tenant create NAME --jobs hexavox.sms.send.v1,
#: hexavox.sms.duplicate``) that lets ``duplicate=1`` send a repeat inside the window. Never implied by ``*``: the
#: guard protects recipients from double sends (seed 004, 311), so waiving it is a deliberate grant.
WAIVE_RULE = "hexavox.sms.duplicate"
WAIVE_REFUSED = ("duplicate=1 ignored: this key's rules do not include hexavox.sms.duplicate, "
                 "the 10-second guard applies")


def content_digest(merchant_id: int, channel: str, recipient: str, subject: str, body: str) -> str:
    parts = (str(merchant_id), channel, recipient, subject, body)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def claim_window(session: Session, digest: str, message_id: str, window_seconds: int, *,
                 waived: bool = False) -> None:
    """Claim the duplicate window for ``digest`` or refuse with E807.

    ``waived`` (seed 000 ``duplicate=1``, permitted by the key's rules) claims the window even while it is held:
    the repeat is sent, and an ordinary repeat of it inside the next window is refused as usual.
    """
    expires = epoch_ms_now() + window_seconds * 1000
    stmt = upsert_insert(session, DuplicateGuard).values(digest=digest, expires_at_ms=expires, message_id=message_id)
    upsert = stmt.on_conflict_do_update(
        index_elements=["digest"],
        set_={"expires_at_ms": stmt.excluded.expires_at_ms, "message_id": stmt.excluded.message_id},
        where=None if waived else DuplicateGuard.expires_at_ms <= epoch_ms_now(),
    ).returning(DuplicateGuard.message_id)
    if session.execute(upsert).first() is None:
        raise Refusal(Code.DUPLICATE_WITHIN_WINDOW, f"same content to this recipient within {window_seconds}s",
                      field="to")


def waive_rule_applies(asked: bool, allowed_jobs: Collection[str], warnings: list[str]) -> bool:
    """Whether a job's ``duplicate=1`` takes effect: only for keys granted :data:`WAIVE_RULE`; else a warning."""
    if not asked:
        return False
    if WAIVE_RULE in allowed_jobs:
        return True
    warnings.append(WAIVE_REFUSED)
    return False
