"""Consent: OPT_OUT always blocks; marketing needs OPT_IN; OTP and transactional go unless opted out."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import Consent
from schema.states import ConsentStatus
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal

__all__ = ["require_consent", "set_consent", "is_marketing"]


def is_marketing(message_type: str) -> bool:
    return message_type.upper() in {"MKT", "MARKETING"}


def require_consent(session: Session, merchant_id: int, channel: str, contact: str, message_type: str) -> None:
    """Refuse when the recipient opted out (E805), or when marketing lacks an OPT_IN (E806)."""
    status = session.scalars(select(Consent.status).where(
        Consent.merchant_id == merchant_id, Consent.channel == channel, Consent.contact == contact)).first()
    if status == ConsentStatus.OPT_OUT:
        raise Refusal(Code.CONSENT_OPTED_OUT, f"recipient opted out of {channel}", field="to")
    if is_marketing(message_type) and status != ConsentStatus.OPT_IN:
        raise Refusal(Code.CONSENT_REQUIRED, f"marketing {channel} needs OPT_IN", field="to")


def set_consent(session: Session, merchant_id: int, channel: str, contact: str, status: ConsentStatus,
                source: str) -> None:
    """Insert or overwrite one consent (last write wins; concurrent upserts cannot create two rows)."""
    stmt = upsert_insert(session, Consent).values(merchant_id=merchant_id, channel=channel, contact=contact,
                                                  status=status.value, source=source)
    stmt = stmt.on_conflict_do_update(index_elements=["merchant_id", "channel", "contact"],
                                      set_={"status": stmt.excluded.status, "source": stmt.excluded.source,
                                            "updated_at": stmt.excluded.updated_at})
    session.execute(stmt)
