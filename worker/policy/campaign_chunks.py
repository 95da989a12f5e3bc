"""Chunks of a campaign: claim a range of recipients, then expand, re-check and write it, several ranges at a time.

A chunk is two short transactions. The **claim** locks the campaign row just long enough to take the next range
(the cursor moves past it and the range is noted in ``payload["inflight"]``) and, while fewer than
``HEXAVOX_CAMPAIGN_PARALLEL_CHUNKS`` ranges are in flight, starts the chunk after it at once, so one campaign's
ranges are written by several worker threads together. The **write** holds the row only FOR KEY SHARE (other
chunks write alongside; pause and cancel wait for it) and an advisory lock on its range (two copies of one chunk
never write together): it re-checks the merchant (active, route), consent *now* (OPT_OUT wins, MKT needs OPT_IN),
the duplicate window and quota (the campaign's channel's units: SMS segments, voice minutes, emails) with one
statement each, writes the range's messages and the callbacks of those refused in one INSERT each, and takes the
range off ``inflight`` with the counts in one UPDATE.

A range stays in ``inflight`` until written, so nothing is lost: a chunk that finds its campaign PAUSED leaves it
there (resume starts it again), a chunk whose worker died is redone from it, and beat restarts what a lost task
left. Message ids are derived from the campaign and the recipient's position, and a range off ``inflight`` is
never written again, so nobody is sent to twice.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from schema.models import Campaign, Consent, ContactListMember, DuplicateGuard, Merchant, Message
from schema.states import CampaignState, ConsentStatus, Freshness, MessageState
from worker.bulk_copy import copy_rows
from worker.catalogue import Code
from worker.db import upsert_insert
from worker.dispatch_item import DispatchItem
from worker.errors import Refusal, ValidationError
from worker.policy.consent import is_marketing
from worker.policy.dbtime import epoch_ms_now
from worker.policy.duplicates import content_digest
from worker.policy.merchants import require_route
from worker.policy.periods import current_period
from worker.policy.pricing import table_cost
from worker.policy.quota import reserve_prefix, reserve_units
from worker.policy.refused_callbacks import queue_refused_callbacks
from worker.settings import get_settings
from worker.validation import encode_info, normalize_email, normalize_phone

__all__ = ["ChunkClaim", "ChunkResult", "INFLIGHT", "claim_chunk", "write_chunk", "redone", "chunk_starts",
           "inflight_of", "last_position", "message_id_for"]

_IDS = uuid.UUID("6f1c7c1e-2b7e-4b8e-9a57-0c2f3b5d8a10")
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")
_CAMPAIGNS = cast(Table, Campaign.__table__)
_MESSAGES = cast(Table, Message.__table__)
#: The duplicate window of every live recipient of a chunk claimed at once: arrays bound as two parameters, so the
#: statement is the same text whatever the chunk's size (a multi-row VALUES is rendered and bound value by value).
#: Times are the database's clock in epoch ms, as :class:`worker.policy.dbtime.epoch_ms_now` renders it.
_DB_MS = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
_CLAIM_WINDOWS = text(
    "INSERT INTO duplicate_guard (digest, expires_at_ms, message_id) "
    f"SELECT d, {_DB_MS} + :window_ms, m FROM unnest(CAST(:digests AS varchar[]), CAST(:ids AS varchar[])) AS w(d, m) "
    "ON CONFLICT (digest) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, message_id = excluded.message_id "
    f"WHERE duplicate_guard.expires_at_ms <= {_DB_MS} RETURNING duplicate_guard.digest")
#: Where the ranges claimed but not written yet are kept in the campaign's payload: {"start": end}.
INFLIGHT = "inflight"


@dataclass
class ChunkClaim:
    """What the claim decided: the range to write (``end`` None: nothing) and the chunk to start at once.

    ``written``: the range was written before (by this chunk's earlier delivery or another copy); ``end`` is then
    only where it ends, for a redelivered copy to hand its messages to dispatch again.
    """

    start: int
    end: int | None = None
    successor: int | None = None  #: the next range's start, to publish now (another thread writes it)
    written: bool = False


@dataclass
class ChunkResult:
    """What to publish once the chunk's write committed."""

    to_dispatch: list[DispatchItem] = field(default_factory=list)
    next_cursor: int | None = None  #: a chunk to start now; None when none is due from here
    fresh: bool = False  #: True when this call wrote the range (False: redone, parked, or nothing to do)


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


def inflight_of(campaign: Campaign) -> dict[int, int]:
    """The ranges claimed and not written yet, start -> end."""
    return {int(k): int(v) for k, v in dict(campaign.payload.get(INFLIGHT) or {}).items()}


def chunk_starts(cursor: int, inflight: dict[str, Any] | None, last: int) -> list[int]:
    """Every chunk a (re)started campaign needs: each range left in flight, and the cursor unless it is at the end."""
    starts = sorted(int(k) for k in (inflight or {}))
    return starts + ([cursor] if cursor < last else [])


def last_position(campaign: Campaign) -> int:
    """Where the cursor stops: the newest member id at intake (list), or the number of inline recipients."""
    if campaign.list_id is None:
        return len(campaign.payload.get("recipients", []))
    return int(campaign.last_member_id)


def claim_chunk(session: Session, campaign_id: int, start: int, *, chunk_size: int, parallel: int) -> ChunkClaim:
    """Take the range at ``start`` when it is the cursor (moving it), or hand back a range already in flight.

    The campaign row is locked only for this short transaction. A range is taken only while the campaign is
    RUNNING and fewer than ``parallel`` are in flight; the chunk after it is started at once while that still holds
    (otherwise a chunk that frees a place starts it).
    """
    # FOR NO KEY UPDATE: claims queue on each other and on the chunks' count updates, never on a whole write (a
    # writer holds the row FOR KEY SHARE); pause and cancel (FOR UPDATE) wait for both.
    campaign = session.scalars(select(Campaign).where(Campaign.id == campaign_id)
                               .with_for_update(key_share=True)).first()
    if campaign is None:
        return ChunkClaim(start)
    inflight = inflight_of(campaign)
    if start in inflight:  # parked by a pause, or its earlier delivery died: write it now
        return ChunkClaim(start, inflight[start])
    if start < campaign.cursor:  # written before: its end, for a redelivered copy to republish its messages
        return ChunkClaim(start, _range_end(session, campaign, start, chunk_size, last_position(campaign)),
                          written=True)
    if start != campaign.cursor or campaign.state != CampaignState.RUNNING:
        return ChunkClaim(start)
    last = last_position(campaign)
    if start >= last or len(inflight) >= parallel:
        if not inflight and start >= last:
            campaign.state, campaign.finished_at = CampaignState.COMPLETED.value, dt.datetime.now(dt.UTC)
        return ChunkClaim(start)
    end = _range_end(session, campaign, start, chunk_size, last)
    inflight[start] = end
    campaign.payload = {**campaign.payload, INFLIGHT: {str(k): v for k, v in sorted(inflight.items())}}
    campaign.cursor, campaign.progressed_at = end, dt.datetime.now(dt.UTC)
    return ChunkClaim(start, end, end if end < last and len(inflight) < parallel else None)


def _range_end(session: Session, campaign: Campaign, start: int, size: int, last: int) -> int:
    """The position after the ``size`` recipients from ``start``: inline by index, list members by id."""
    if campaign.list_id is None:
        return min(start + size, last)
    ids = (select(ContactListMember.id).where(ContactListMember.list_id == campaign.list_id,
                                              ContactListMember.id > start, ContactListMember.id <= last)
           .order_by(ContactListMember.id).limit(size).subquery())
    return int(session.scalar(select(func.max(ids.c.id))) or last)


def write_chunk(session: Session, campaign_id: int, start: int, end: int, *, window_seconds: int, parallel: int,
                redelivered: bool = True, before_commit: Callable[[], None] = lambda: None) -> ChunkResult:
    """Expand, check and write the range (start, end] when it is still in flight and the campaign RUNNING.

    A range no longer in flight was written by another copy: only a copy the broker gave back after its worker
    died (``redelivered``) hands its still-QUEUED messages to dispatch again (its own earlier delivery may have
    committed and died before publishing them).
    """
    if not _lock_range(session, campaign_id, start):
        return ChunkResult()  # another copy of this chunk is writing it now
    campaign = session.scalars(select(Campaign).where(Campaign.id == campaign_id)
                               .with_for_update(read=True, key_share=True)).first()
    if campaign is None:
        return ChunkResult()
    if start not in inflight_of(campaign):
        return redone(session, campaign, start, end, parallel) if redelivered else ChunkResult()
    if campaign.state != CampaignState.RUNNING:
        return ChunkResult()  # PAUSED: the range stays in flight for resume; CANCELLED: counted by the cancel
    recipients = _slice(session, campaign, start, end)
    merchant = session.get(Merchant, campaign.merchant_id)
    assert merchant is not None, "campaigns cascade with their merchant"
    _check_all(session, campaign, merchant, recipients, window_seconds)
    frontier = _write_charged(session, campaign, merchant, recipients, start, parallel)
    before_commit()
    return ChunkResult([DispatchItem(r.message_id, campaign.channel, campaign.message_type) for r in _live(recipients)],
                       frontier, fresh=True)


def _write_charged(session: Session, campaign: Campaign, merchant: Merchant, recipients: list[_Recipient],
                   start: int, parallel: int) -> int | None:
    """Write the range's rows and charge its units; returns the chunk to start now (see :func:`_record_progress`).

    The merchant's balance row is charged by every send of the merchant, OTPs included, and stays locked from the
    charge to the commit. So the rows are written first, as if every live recipient fits, and the whole charge is
    one conditional UPDATE at the end. When it does not fit (units ran short, or the period rolled over meanwhile),
    that attempt is undone to its savepoint and the range is written the careful way: the longest run that fits
    charged first, the rest refused E808. Both ways lock the campaign row before the balance row, as cancel does.
    """
    now = dt.datetime.now(dt.UTC)
    live = _live(recipients)
    period = current_period(merchant, now).start
    savepoint = session.begin_nested()
    for r in live:
        r.period_start = period
    frontier = _write_rows(session, campaign, recipients, start, parallel, now)
    try:
        charged = reserve_units(session, merchant, campaign.channel, sum(r.units for r in live), now) if live else None
    except Refusal:
        charged = None
    if not live or charged == period:
        savepoint.commit()
        return frontier
    savepoint.rollback()
    session.execute(select(_CAMPAIGNS.c.id).where(_CAMPAIGNS.c.id == campaign.id).with_for_update(key_share=True))
    _reserve(session, campaign, merchant, recipients)
    return _write_rows(session, campaign, recipients, start, parallel, now)


def _write_rows(session: Session, campaign: Campaign, recipients: list[_Recipient], start: int, parallel: int,
                now: dt.datetime) -> int | None:
    """The range's messages, the callbacks of those refused, and the campaign's counts."""
    copy_rows(session, _MESSAGES, [_row(campaign, r, get_settings().unit_prices, now) for r in recipients])
    refused = [(r.message_id, r.refusal.code.value) for r in recipients if r.refusal is not None]
    queue_refused_callbacks(session, campaign.merchant_id, campaign.request_id, dict(campaign.payload["options"]),
                            refused, now)
    return _record_progress(session, campaign, start, len(recipients), len(_live(recipients)), parallel, now)


def _lock_range(session: Session, campaign_id: int, start: int) -> bool:
    """This transaction's advisory lock on one range of one campaign; False when another copy holds it.

    SQLite (the embedded default) has no advisory locks and needs none: it lets one transaction write at a time.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = (campaign_id % 2**31, start % 2**31)
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(literal(key[0]), literal(key[1])))))


def _record_progress(session: Session, campaign: Campaign, start: int, expanded: int, queued: int, parallel: int,
                     now: dt.datetime) -> int | None:
    """Counts up and the range off ``inflight`` in one UPDATE (other chunks add theirs alongside); COMPLETED when
    it was the last. Returns the chunk to start now: the cursor, when a place is free (the last claim may have found
    none; a second copy of that chunk is harmless: one claims the range, the other finds it taken)."""
    c = _CAMPAIGNS.c
    row = session.execute(
        update(_CAMPAIGNS).where(c.id == campaign.id)
        .values(processed=c.processed + expanded, queued=c.queued + queued, refused=c.refused + expanded - queued,
                progressed_at=now, payload=_without_inflight(session, start))
        .returning(c.cursor, c.state, c.payload[INFLIGHT])).one()
    left = len(row[2] or {})
    last = last_position(campaign)
    if left == 0 and int(row[0]) >= last:
        session.execute(update(_CAMPAIGNS).where(c.id == campaign.id, c.state == CampaignState.RUNNING.value)
                        .values(state=CampaignState.COMPLETED.value, finished_at=now))
        return None
    running = row[1] == CampaignState.RUNNING
    return int(row[0]) if running and int(row[0]) < last and left < parallel else None


def _without_inflight(session: Session, start: int) -> Any:
    """The campaign's payload with the range at ``start`` taken off ``inflight``, computed by the database so chunks
    writing at once never overwrite each other's ranges (SQLite, the embedded default, has its own JSON function)."""
    if session.get_bind().dialect.name == "postgresql":
        return _CAMPAIGNS.c.payload.op("#-", return_type=JSONB)(literal([INFLIGHT, str(start)], ARRAY(Text)))
    return func.json_remove(_CAMPAIGNS.c.payload, f'$.{INFLIGHT}."{start}"')


def _slice(session: Session, campaign: Campaign, start: int, end: int) -> list[_Recipient]:
    """The range's recipients: list members by id in (start, end], inline ones by index in [start, end)."""
    template = campaign.payload
    if campaign.list_id is None:
        items = template.get("recipients", [])[start:end]
        pairs = [(start + i, str(raw), body) for i, (raw, body) in enumerate(items)]
    else:
        members = session.execute(select(ContactListMember.id, ContactListMember.contact).where(
            ContactListMember.list_id == campaign.list_id, ContactListMember.id > start,
            ContactListMember.id <= end).order_by(ContactListMember.id)).all()
        pairs = [(int(m[0]), str(m[1]), None) for m in members]
    default_units = int(template.get("units") or 0)
    return [_Recipient(pos, raw, body or template.get("body") or "", default_units if body is None else 0,
                       message_id_for(campaign.request_id, pos)) for pos, raw, body in pairs]


def redone(session: Session, campaign: Campaign, start: int, end: int, parallel: int) -> ChunkResult:
    """A range written before (its worker died after the commit): hand its still-QUEUED messages to dispatch again,
    and start the chunk at the cursor if a place is free (that worker died before it could)."""
    ids = [message_id_for(campaign.request_id, pos) for pos in _positions(session, campaign, start, end)]
    queued = session.scalars(select(Message.id).where(Message.id.in_(ids),
                                                      Message.status == MessageState.QUEUED.value)).all()
    more = (campaign.state == CampaignState.RUNNING and campaign.cursor < last_position(campaign)
            and len(inflight_of(campaign)) < parallel)
    return ChunkResult([DispatchItem(mid, campaign.channel, campaign.message_type) for mid in queued],
                       int(campaign.cursor) if more else None)


def _positions(session: Session, campaign: Campaign, start: int, end: int) -> list[int]:
    if campaign.list_id is None:
        return list(range(start, end))
    return [int(i) for i in session.scalars(select(ContactListMember.id).where(
        ContactListMember.list_id == campaign.list_id, ContactListMember.id > start, ContactListMember.id <= end))]


def _check_all(session: Session, campaign: Campaign, merchant: Merchant, recipients: list[_Recipient],
               window_seconds: int) -> None:
    """Every check but quota (charged last, :func:`_write_charged`), one statement per check for the whole chunk; each
    recipient keeps its first refusal."""
    whole = _whole_chunk_refusal(session, campaign, merchant)
    for r in recipients:
        r.refusal = whole or _validate(r, campaign, merchant)
    _refuse_repeats(recipients)
    _check_consent(session, campaign, merchant, recipients)
    _claim_windows(session, campaign, merchant, recipients, window_seconds)


def _whole_chunk_refusal(session: Session, campaign: Campaign, merchant: Merchant) -> Refusal | None:
    if not merchant.active:
        return Refusal(Code.MERCHANT_INACTIVE, "merchant is not active", field="merchantId")
    if campaign.channel != "SMS":
        return None  # routes are SMS's, as for a single send
    try:
        require_route(session, merchant.id, campaign.channel, campaign.message_type)
    except Refusal as refusal:
        return refusal
    return None


def _validate(r: _Recipient, campaign: Campaign, merchant: Merchant) -> Refusal | None:
    try:
        r.contact = _contact(r.raw, campaign, merchant)
        if r.units == 0 and campaign.channel == "SMS":  # an SMS batch node's own body: its own segments
            r.units = encode_info(r.body, str(campaign.payload["options"].get("unicode", "AUTO"))).segments
    except ValidationError as err:
        r.contact = r.contact or r.raw[:64]
        return err
    return None


def _contact(raw: str, campaign: Campaign, merchant: Merchant) -> str:
    """The recipient's normalized email address (EMAIL, as the email send normalizes it), or its E.164 number.

    A list member was normalized as an SMS number when it was added (list create and import both run
    :func:`normalize_phone`), so an SMS campaign to a list parses it again only when the merchant limits
    destination countries: parsing and typing every number was most of a chunk's time. A VOICE campaign parses
    every number as a voice number."""
    if campaign.channel == "EMAIL":
        return normalize_email(raw)
    trusted = campaign.list_id is not None and campaign.channel == "SMS" and not merchant.allowed_countries
    if trusted and _E164.fullmatch(raw):
        return raw
    return normalize_phone(raw, channel=campaign.channel, allowed_countries=merchant.allowed_countries)


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
    subject = str(campaign.payload.get("subject") or "")  # as the single send's window: an email's subject counts
    digests = {r.message_id: content_digest(merchant.id, campaign.channel, r.contact, subject, r.body) for r in live}
    if session.get_bind().dialect.name == "postgresql":
        claimed = set(session.scalars(_CLAIM_WINDOWS, {
            "digests": [digests[r.message_id] for r in live], "ids": [r.message_id for r in live],
            "window_ms": window_seconds * 1000}).all())
    else:
        claimed = _claim_windows_portable(session, digests, window_seconds)
    for r in live:
        if digests[r.message_id] not in claimed:
            r.refusal = Refusal(Code.DUPLICATE_WITHIN_WINDOW, "same content to this recipient within "
                                f"{window_seconds}s", field="to")


def _claim_windows_portable(session: Session, digests: dict[str, str], window_seconds: int) -> set[str]:
    """The same upsert as :data:`_CLAIM_WINDOWS` built by SQLAlchemy, for SQLite (the embedded default), which has
    no arrays to bind the chunk as one parameter; the digests the upsert claimed."""
    now_ms = epoch_ms_now()
    stmt = upsert_insert(session, DuplicateGuard).values(
        [{"digest": digest, "expires_at_ms": now_ms + window_seconds * 1000, "message_id": message_id}
         for message_id, digest in digests.items()])
    upsert = stmt.on_conflict_do_update(index_elements=["digest"], set_={
        "expires_at_ms": stmt.excluded.expires_at_ms, "message_id": stmt.excluded.message_id},
        where=DuplicateGuard.expires_at_ms <= now_ms).returning(DuplicateGuard.digest)
    return set(session.scalars(upsert).all())


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


def _row(campaign: Campaign, r: _Recipient, prices: dict[str, int], now: dt.datetime) -> dict[str, Any]:
    refused = r.refusal is not None
    template = campaign.payload
    options = dict(template.get("options", {}))
    if r.units and not refused and campaign.channel == "SMS":
        options["segments"] = r.units
    return {"id": r.message_id, "request_id": campaign.request_id, "merchant_id": campaign.merchant_id,
            "channel": campaign.channel, "message_type": campaign.message_type, "recipient": r.contact or r.raw[:64],
            "sender": template.get("sender", ""), "subject": template.get("subject") or "", "body": r.body,
            "options": options,
            "units": 0 if refused else r.units, "period_start": None if refused else r.period_start,
            "cost_micros": 0 if refused else table_cost(prices, campaign.channel, r.units),
            "status": (MessageState.REFUSED if refused else MessageState.QUEUED).value,
            "freshness": (Freshness.FINAL if refused else Freshness.PROVISIONAL).value,
            "error_code": r.refusal.code.value if r.refusal else None,
            "error_detail": r.refusal.detail[:500] if r.refusal else None,
            "final_at": now if refused else None, "provider_priced": False, "dispatch_attempts": 0,
            "reconcile_attempts": 0, "created_at": now, "updated_at": now}
