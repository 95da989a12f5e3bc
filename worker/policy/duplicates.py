"""The 10-second duplicate guard (seed 004 code 311): same merchant, recipient and content within the window.

One upsert claims the window only when the previous one has expired by database time. It
runs in the message's own transaction, so a message refused later (quota) releases the
claim, and only the first of a burst is accepted and charged however many workers race.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from sqlalchemy import Dialect, TextClause, text
from sqlalchemy.orm import Session

from worker.catalogue import Code
from worker.errors import Refusal
from worker.policy.consent import Recipient, consent_allows_sql, is_marketing
from worker.policy.dbtime import epoch_ms_now

__all__ = ["content_digest", "claim_window", "release_window", "waive_rule_applies", "WAIVE_RULE"]

#: The key rule (listed among a key's jobs: ``hexavox tenant create NAME --jobs hexavox.sms.send.v1,
#: hexavox.sms.duplicate``) that lets ``duplicate=1`` send a repeat inside the window. Never implied by ``*``: the
#: guard protects recipients from double sends (seed 004, 311), so waiving it is a deliberate grant.
WAIVE_RULE = "hexavox.sms.duplicate"
WAIVE_REFUSED = ("duplicate=1 ignored: this key's rules do not include hexavox.sms.duplicate, "
                 "the 10-second guard applies")


def _claim_sql(now: str, *, waived: bool, consent: str) -> TextClause:
    """The claim as text: SQLAlchemy never caches an ON CONFLICT construct (it compiled this one for every message),
    and the upsert reads the same on PostgreSQL and SQLite but for the database clock (``now``). ``consent``: a
    condition the claim also needs (the recipient's consent), or TRUE. SQLite needs that WHERE on the SELECT too:
    it tells its parser the ON CONFLICT belongs to the INSERT."""
    held = "" if waived else f" WHERE duplicate_guard.expires_at_ms <= {now}"
    return text("INSERT INTO duplicate_guard (digest, expires_at_ms, message_id) "
                f"SELECT :digest, {now} + :window_ms, :message_id WHERE {consent} ON CONFLICT (digest) DO UPDATE "
                "SET expires_at_ms = excluded.expires_at_ms, message_id = excluded.message_id"
                f"{held} RETURNING message_id")


#: (dialect name, waived, consent condition) -> the claim statement, built once per database kind.
_CLAIMS: dict[tuple[str, bool, str], TextClause] = {}


def _claim_for(dialect: Dialect, waived: bool, consent: str) -> TextClause:
    claim = _CLAIMS.get((dialect.name, waived, consent))
    if claim is None:
        now = str(epoch_ms_now().compile(dialect=dialect))
        claim = _CLAIMS[(dialect.name, waived, consent)] = _claim_sql(now, waived=waived, consent=consent)
    return claim


def content_digest(merchant_id: int, channel: str, recipient: str, subject: str, body: str) -> str:
    parts = (str(merchant_id), channel, recipient, subject, body)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def claim_window(session: Session, digest: str, message_id: str, window_seconds: int, *,
                 waived: bool = False, consent: Recipient | None = None) -> None:
    """Claim the duplicate window for ``digest`` or refuse with E807.

    ``waived`` (seed 000 ``duplicate=1``, permitted by the key's rules) claims the window even while it is held:
    the repeat is sent, and an ordinary repeat of it inside the next window is refused as usual.

    ``consent``: check the recipient's consent first (:func:`worker.policy.consent.require_consent`) in the same
    statement, one round trip for both. When nothing was claimed, consent is read again to tell which refusal it
    was (E805/E806 before E807, in the policy's order); if it now allows the message, the window alone is tried.
    """
    condition = "1 = 1" if consent is None else consent_allows_sql(is_marketing(consent.message_type))
    claim = _claim_for(session.get_bind().dialect, waived, condition)
    params = {"digest": digest, "window_ms": window_seconds * 1000, "message_id": message_id,
              **(consent.params() if consent is not None else {})}
    if session.execute(claim, params).first() is None:
        if consent is not None:
            consent.require(session)
            claim_window(session, digest, message_id, window_seconds, waived=waived)
            return
        raise Refusal(Code.DUPLICATE_WITHIN_WINDOW, f"same content to this recipient within {window_seconds}s",
                      field="to")


_RELEASE = text("DELETE FROM duplicate_guard WHERE digest = :digest AND message_id = :message_id")


def release_window(session: Session, digest: str, message_id: str) -> None:
    """Undo this transaction's own (unwaived) claim of ``message_id``, for a caller without a savepoint to roll back.

    The claim was taken only because no live one held the window, and an expired claim holds nothing: removing the
    row leaves the window exactly as free as rolling the claim back would.
    """
    session.execute(_RELEASE, {"digest": digest, "message_id": message_id})


def waive_rule_applies(asked: bool, allowed_jobs: Collection[str], warnings: list[str]) -> bool:
    """Whether a job's ``duplicate=1`` takes effect: only for keys granted :data:`WAIVE_RULE`; else a warning."""
    if not asked:
        return False
    if WAIVE_RULE in allowed_jobs:
        return True
    warnings.append(WAIVE_REFUSED)
    return False
