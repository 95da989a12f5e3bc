"""One chunk of a campaign: expand, re-check with set-based statements, write the messages, advance the cursor.

Everything a chunk does is one transaction that holds the campaign row's lock: it re-checks the merchant (active,
route), consent *now* (OPT_OUT wins, MKT needs OPT_IN), the duplicate window and quota for its recipients with one
statement each, writes their messages in one INSERT, and moves the cursor only if it is still where this chunk
started. Message ids are derived from the campaign and the recipient's position, so a chunk redone after a crash
finds its work committed (the cursor moved) and only hands the still-QUEUED messages to dispatch again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from schema.models import Campaign, Consent, ContactListMember, DuplicateGuard, Merchant, Message
from schema.states import CampaignState, ConsentStatus, Freshness, MessageState
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.errors import Refusal, ValidationError
from worker.policy.consent import is_marketing
from worker.policy.dbtime import epoch_ms_now
from worker.policy.duplicates import content_digest
from worker.policy.merchants import require_route
from worker.policy.pricing import table_cost
from worker.policy.quota import reserve_prefix
from worker.settings import get_settings
from worker.validation import encode_info, normalize_phone

__all__ = ["ChunkResult", "run_chunk", "message_id_for"]

_IDS = uuid.UUID("6f1c7c1e-2b7e-4b8e-9a57-0c2f3b5d8a10")


@dataclass
class ChunkResult:
    """What to publish once the chunk's transaction committed."""

    to_dispatch: list[tuple[str, str, str]] = field(default_factory=list)
    next_cursor: int | None = None  #: where the next chunk starts; None when the campaign stops here
    fresh: bool = False  #: True when this call wrote the chunk (False: redone, or nothing to do)


@dataclass
class _Recipient:
    position: int
    raw: str
    body: str
    units: int
    message_id: str
    contact: str = ""
    refusal: Refusal | None = None
    period_start: dt.date | None = None  #: the billing period its units were charged to


def message_id_for(request_id: str, position: int) -> str:
    """The id of the message of one recipient position: the same on every attempt of a chunk."""
    return str(uuid.uuid5(_IDS, f"{request_id}:{position}"))


def run_chunk(session: Session, campaign_id: int, cursor: int, *, chunk_size: int, window_seconds: int,
              redelivered: bool = True, before_commit: Callable[[], None] = lambda: None) -> ChunkResult:
    """Expand the chunk that starts at ``cursor``, or, if that chunk was already written, republish its QUEUED rows.

    Only a copy the broker gave back after its worker died (``redelivered``) republishes: a fresh copy that finds
    the chunk written is a second copy (beat restarted a campaign that was only slow) and stops there, so
    copies never multiply into parallel chains.
    """
    campaign = session.scalars(select(Campaign).where(Campaign.id == campaign_id).with_for_update()).first()
    if campaign is None:
        return ChunkResult()
    recipients, end = _slice(session, campaign, cursor, chunk_size)
    if campaign.cursor != cursor:
        return _redone(session, campaign, recipients, cursor, end) if redelivered else ChunkResult()
    if campaign.state != CampaignState.RUNNING:
        return ChunkResult()
    merchant = session.get(Merchant, campaign.merchant_id)
    assert merchant is not None, "campaigns cascade with their merchant"
    _check_all(session, campaign, merchant, recipients, window_seconds)
    prices = get_settings().unit_prices
    rows = [_row(campaign, r, prices) for r in recipients]
    if rows:
        session.execute(insert(Message), rows)
    queued = [r for r in recipients if r.refusal is None]
    _advance(campaign, end, len(recipients), len(queued))
    before_commit()
    return ChunkResult([(r.message_id, campaign.channel, campaign.message_type) for r in queued],
                       end if campaign.state == CampaignState.RUNNING else None, fresh=True)


def _slice(session: Session, campaign: Campaign, cursor: int, size: int) -> tuple[list[_Recipient], int]:
    """The chunk's recipients and the cursor after them: list members by id, inline ones by index."""
    template = campaign.payload
    if campaign.list_id is None:
        items = template.get("recipients", [])[cursor:cursor + size]
        pairs = [(cursor + i, str(raw), body) for i, (raw, body) in enumerate(items)]
        end = cursor + len(pairs)
    else:
        members = session.execute(select(ContactListMember.id, ContactListMember.contact).where(
            ContactListMember.list_id == campaign.list_id, ContactListMember.id > cursor,
            ContactListMember.id <= campaign.last_member_id).order_by(ContactListMember.id).limit(size)).all()
        pairs = [(int(m[0]), str(m[1]), None) for m in members]
        end = pairs[-1][0] if pairs else campaign.last_member_id
    default_units = int(template.get("units") or 0)
    return [_Recipient(pos, raw, body or template.get("body") or "", default_units if body is None else 0,
                       message_id_for(campaign.request_id, pos)) for pos, raw, body in pairs], end


def _redone(session: Session, campaign: Campaign, recipients: list[_Recipient], cursor: int,
            end: int) -> ChunkResult:
    """The chunk committed before (its worker died after): hand its still-QUEUED messages to dispatch again.

    When it was the latest chunk, its worker died before starting the next one: start it (once more is harmless,
    the next chunk moves the cursor conditionally).
    """
    if cursor > campaign.cursor:
        return ChunkResult()
    ids = [r.message_id for r in recipients]
    queued = session.scalars(select(Message.id).where(Message.id.in_(ids),
                                                      Message.status == MessageState.QUEUED.value)).all()
    latest = end == campaign.cursor and campaign.state == CampaignState.RUNNING
    return ChunkResult([(mid, campaign.channel, campaign.message_type) for mid in queued],
                       campaign.cursor if latest else None)


def _check_all(session: Session, campaign: Campaign, merchant: Merchant, recipients: list[_Recipient],
               window_seconds: int) -> None:
    """Every check, one statement per check for the whole chunk; each recipient keeps its first refusal."""
    whole = _whole_chunk_refusal(session, campaign, merchant)
    for r in recipients:
        r.refusal = whole or _validate(r, campaign, merchant)
    _refuse_repeats(recipients)
    _check_consent(session, campaign, merchant, recipients)
    _claim_windows(session, campaign, merchant, recipients, window_seconds)
    _reserve(session, campaign, merchant, recipients)


def _whole_chunk_refusal(session: Session, campaign: Campaign, merchant: Merchant) -> Refusal | None:
    if not merchant.active:
        return Refusal(Code.MERCHANT_INACTIVE, "merchant is not active", field="merchantId")
    try:
        require_route(session, merchant.id, campaign.channel, campaign.message_type)
    except Refusal as refusal:
        return refusal
    return None


def _validate(r: _Recipient, campaign: Campaign, merchant: Merchant) -> Refusal | None:
    try:
        r.contact = normalize_phone(r.raw, channel=campaign.channel, allowed_countries=merchant.allowed_countries)
        if r.units == 0:
            r.units = encode_info(r.body, str(campaign.payload["options"].get("unicode", "AUTO"))).segments
    except ValidationError as err:
        r.contact = r.contact or r.raw[:64]
        return err
    return None


def _refuse_repeats(recipients: list[_Recipient]) -> None:
    """A recipient twice in one chunk with the same body: the second is a duplicate, like two sends in 10 s."""
    seen: set[tuple[str, str]] = set()
    for r in _live(recipients):
        key = (r.contact, r.body)
        if key in seen:
            r.refusal = Refusal(Code.DUPLICATE_WITHIN_WINDOW, "same recipient twice in one campaign", field="to")
        seen.add(key)


def _check_consent(session: Session, campaign: Campaign, merchant: Merchant, recipients: list[_Recipient]) -> None:
    live = _live(recipients)
    if not live:
        return
    status: dict[str, str] = {row[0]: row[1] for row in session.execute(select(Consent.contact, Consent.status).where(
        Consent.merchant_id == merchant.id, Consent.channel == campaign.channel,
        Consent.contact.in_({r.contact for r in live})))}
    marketing = is_marketing(campaign.message_type)
    for r in live:
        found = status.get(r.contact)
        if found == ConsentStatus.OPT_OUT:
            r.refusal = Refusal(Code.CONSENT_OPTED_OUT, f"recipient opted out of {campaign.channel}", field="to")
        elif marketing and found != ConsentStatus.OPT_IN:
            r.refusal = Refusal(Code.CONSENT_REQUIRED, f"marketing {campaign.channel} needs OPT_IN", field="to")


def _claim_windows(session: Session, campaign: Campaign, merchant: Merchant, recipients: list[_Recipient],
                   window_seconds: int) -> None:
    """One upsert claims the duplicate window of every live recipient; those it did not claim are duplicates."""
    live = _live(recipients)
    if not live:
        return
    now_ms = epoch_ms_now()
    digests = {r.message_id: content_digest(merchant.id, campaign.channel, r.contact, "", r.body) for r in live}
    stmt = upsert_insert(session, DuplicateGuard).values(
        [{"digest": digests[r.message_id], "expires_at_ms": now_ms + window_seconds * 1000,
          "message_id": r.message_id} for r in live])
    upsert = stmt.on_conflict_do_update(index_elements=["digest"], set_={
        "expires_at_ms": stmt.excluded.expires_at_ms, "message_id": stmt.excluded.message_id},
        where=DuplicateGuard.expires_at_ms <= now_ms).returning(DuplicateGuard.digest)
    claimed = set(session.scalars(upsert).all())
    for r in live:
        if digests[r.message_id] not in claimed:
            r.refusal = Refusal(Code.DUPLICATE_WITHIN_WINDOW, "same content to this recipient within "
                                f"{window_seconds}s", field="to")


def _reserve(session: Session, campaign: Campaign, merchant: Merchant, recipients: list[_Recipient]) -> None:
    """Reserve units for the longest run that fits; the rest is refused E808 and gives its window back."""
    live = _live(recipients)
    if not live:
        return
    fits, period = reserve_prefix(session, merchant, campaign.channel, [r.units for r in live])
    for r in live[:fits]:
        r.period_start = period
    over = live[fits:]
    for r in over:
        r.refusal = Refusal(Code.INSUFFICIENT_BALANCE, f"not enough {campaign.channel} units left", field="to")
    if over:
        session.execute(delete(DuplicateGuard).where(DuplicateGuard.message_id.in_([r.message_id for r in over])))


def _live(recipients: list[_Recipient]) -> list[_Recipient]:
    return [r for r in recipients if r.refusal is None]


def _row(campaign: Campaign, r: _Recipient, prices: dict[str, int]) -> dict[str, Any]:
    refused = r.refusal is not None
    template = campaign.payload
    options = dict(template.get("options", {}))
    if r.units and not refused:
        options["segments"] = r.units
    return {"id": r.message_id, "request_id": campaign.request_id, "merchant_id": campaign.merchant_id,
            "channel": campaign.channel, "message_type": campaign.message_type, "recipient": r.contact or r.raw[:64],
            "sender": template.get("sender", ""), "subject": "", "body": r.body, "options": options,
            "units": 0 if refused else r.units, "period_start": None if refused else r.period_start,
            "cost_micros": 0 if refused else table_cost(prices, campaign.channel, r.units),
            "status": (MessageState.REFUSED if refused else MessageState.QUEUED).value,
            "freshness": (Freshness.FINAL if refused else Freshness.PROVISIONAL).value,
            "error_code": r.refusal.code.value if r.refusal else None,
            "error_detail": r.refusal.detail[:500] if r.refusal else None,
            "final_at": dt.datetime.now(dt.UTC) if refused else None}


def _advance(campaign: Campaign, end: int, expanded: int, queued: int) -> None:
    campaign.cursor = end
    campaign.processed += expanded
    campaign.queued += queued
    campaign.refused += expanded - queued
    campaign.progressed_at = dt.datetime.now(dt.UTC)
    if campaign.processed >= campaign.total or expanded == 0:
        campaign.state, campaign.finished_at = CampaignState.COMPLETED.value, campaign.progressed_at
