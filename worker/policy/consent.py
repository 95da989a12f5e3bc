"""Consent: OPT_OUT always blocks; marketing needs OPT_IN; OTP and transactional go unless opted out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from schema.models import Consent
from schema.states import ConsentStatus
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal

__all__ = ["require_consent", "set_consent", "is_marketing", "consent_view", "Recipient", "consent_allows_sql"]


def is_marketing(message_type: str) -> bool:
    return message_type.upper() in {"MKT", "MARKETING"}


_CONSENTS = Consent.__table__.c
#: Built once, on the table (not the ORM entity): no ORM statement machinery, and the cache key is kept.
_STATUS = select(_CONSENTS.status).where(_CONSENTS.merchant_id == bindparam("merchant_id"),
                                         _CONSENTS.channel == bindparam("channel"),
                                         _CONSENTS.contact == bindparam("contact"))


def require_consent(session: Session, merchant_id: int, channel: str, contact: str, message_type: str) -> None:
    """Refuse when the recipient opted out (E805), or when marketing lacks an OPT_IN (E806)."""
    status = session.execute(_STATUS, {"merchant_id": merchant_id, "channel": channel,
                                       "contact": contact}).scalar()
    if status == ConsentStatus.OPT_OUT:
        raise Refusal(Code.CONSENT_OPTED_OUT, f"recipient opted out of {channel}", field="to")
    if is_marketing(message_type) and status != ConsentStatus.OPT_IN:
        raise Refusal(Code.CONSENT_REQUIRED, f"marketing {channel} needs OPT_IN", field="to")


@dataclass(frozen=True)
class Recipient:
    """Whose consent a message needs: :func:`require_consent`'s arguments, for a statement that checks it itself."""

    merchant_id: int
    channel: str
    contact: str
    message_type: str

    def require(self, session: Session) -> None:
        require_consent(session, self.merchant_id, self.channel, self.contact, self.message_type)

    def params(self) -> dict[str, object]:
        return {"c_merchant_id": self.merchant_id, "c_channel": self.channel, "c_contact": self.contact}


def consent_allows_sql(marketing: bool) -> str:
    """:func:`require_consent`'s rule as an SQL condition (bound ``:c_merchant_id``, ``:c_channel``, ``:c_contact``),
    so another statement can take its write only when consent allows the message (PostgreSQL and SQLite alike)."""
    match = "consents.merchant_id = :c_merchant_id AND consents.channel = :c_channel AND consents.contact = :c_contact"
    if marketing:
        return f"EXISTS (SELECT 1 FROM consents WHERE {match} AND consents.status = '{ConsentStatus.OPT_IN.value}')"
    return f"NOT EXISTS (SELECT 1 FROM consents WHERE {match} AND consents.status = '{ConsentStatus.OPT_OUT.value}')"


def set_consent(session: Session, merchant_id: int, channel: str, contact: str, status: ConsentStatus,
                source: str) -> dt.datetime:
    """Insert or overwrite one consent (last write wins; concurrent upserts cannot create two rows).

    Returns the database's time of this write (``updatedAt`` in the answer).
    """
    stmt = upsert_insert(session, Consent).values(merchant_id=merchant_id, channel=channel, contact=contact,
                                                  status=status.value, source=source)
    stmt = stmt.on_conflict_do_update(index_elements=["merchant_id", "channel", "contact"],
                                      set_={"status": stmt.excluded.status, "source": stmt.excluded.source,
                                            "updated_at": stmt.excluded.updated_at})
    updated_at: dt.datetime = session.execute(stmt.returning(Consent.updated_at)).scalar_one()
    return updated_at


def consent_view(merchant_id: str, channel: str, contact: str, status: str, source: str,
                 updated_at: dt.datetime) -> dict[str, str]:
    """One consent exactly as seed 003's ConsentView; ``updatedAt`` in UTC with milliseconds, like the seed."""
    utc = updated_at.replace(tzinfo=dt.UTC) if updated_at.tzinfo is None else updated_at.astimezone(dt.UTC)
    return {"merchantId": merchant_id, "channel": channel, "contact": contact, "status": status, "source": source,
            "updatedAt": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"}
