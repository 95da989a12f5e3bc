"""Inbound delivery reports and replies: apply one provider event to the database, whatever order it comes in.

Providers send reports duplicated, late and out of order (docs/reliability.md R12), so every change here is a
conditional :func:`~worker.policy.transitions.transition`: a report only moves a message out of the states it may
leave, and a terminal state (DELIVERED, FAILED, EXPIRED, REFUSED) is never left. A late ACCEPTED after DELIVERED,
or the fifth copy of a FAILED, finds the message elsewhere and changes nothing, so units are given back once.

* DELIVERED: DISPATCHING | SENT | AMBIGUOUS -> DELIVERED. A report can beat our own SENT record (the provider
  answered the webhook before the dispatch worker committed), hence DISPATCHING. QUEUED is not a source: a
  queued message was proven never received (reconcile) or not sent yet, so a report for it is stale.
* FAILED: the same sources -> FAILED with E815; the move gives the reserved units back in the same transaction.
* ACCEPTED: DISPATCHING | AMBIGUOUS -> SENT; settles an ambiguous send without asking the provider.
* UNKNOWN / NOT_FOUND: ignored and logged (ids and provider code only: raw payloads carry personal data).
* Voice: a DELIVERED report with ``duration_seconds`` settles the message at ``ceil(duration / 60)`` real minutes
  (the estimate from the text length was reserved at intake): the move settles the difference
  (:func:`~worker.policy.quota.settle_voice_minutes`).
* Replies: a reply whose first word is a stop word is honoured only when it is authenticated (it came through the
  endpoint of a provider with a webhook secret, whose signature the receiver checked). It opts the number out of
  SMS (source ``sms-reply``) for the merchant of the message it answers when the event identifies one (message id
  or provider reference), else for the merchants whose SMS (not REFUSED) reached that number from the number the
  reply was sent to, through that provider. A reply that identifies neither opts nobody out: one unsigned STOP
  once opted a number out for every tenant's merchants.
* Each event is applied once per (provider, event id) (table ``inbound_events``): a webhook replayed inside the
  signature's time window, or redelivered by the provider, changes nothing the second time. Events without an id
  of their own get the signed delivery id from the receiver (worker/web.py).
* Only the provider whose endpoint received a report can change a message: the one recorded on it, or while none
  is recorded, one on its route (:func:`find_message`).

Events cross the broker as JSON (:func:`events_to_json` / :func:`events_from_json`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from providers.base import DeliveryEvent, DeliveryStatus
from schema.models import InboundEvent, Message
from schema.states import Channel, ConsentStatus, MessageState
from worker.catalogue import Code
from worker.db import session_scope, upsert_insert
from worker.errors import Refusal
from worker.pii import storable_raw
from worker.policy.consent import set_consent
from worker.policy.merchants import provider_order
from worker.policy.pricing import repriced_cost
from worker.policy.quota import billed_minutes
from worker.policy.transitions import MESSAGE_COLUMNS, transition
from worker.settings import get_settings
from worker.validation.masking import mask_phone
from worker.validation.phone import normalize_phone

__all__ = [
    "record_event",
    "STOP_WORDS", "apply_batch", "apply_event", "events_from_json", "events_to_json", "find_message",
    "is_stop_request", "voice_minutes",
]

log = logging.getLogger(__name__)

#: First words of an SMS reply that withdraw consent (the CTIA / carrier standard set).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
_TRIM = ".,;:!?\"'()[]"

#: States a final report (DELIVERED / FAILED) may move a message out of.
REPORTABLE = (MessageState.DISPATCHING, MessageState.SENT, MessageState.AMBIGUOUS)
#: States an ACCEPTED report may move to SENT: the outcome was still open on our side.
ACCEPTABLE = (MessageState.DISPATCHING, MessageState.AMBIGUOUS)


# -- one event ---------------------------------------------------------------------------------------------------


def apply_event(session: Session, event: DeliveryEvent) -> str:
    """Apply one event in the caller's transaction; returns what happened, for counting:

    delivered, failed, sent (a state moved); unchanged (a duplicate or late report); unknown-message;
    ignored (UNKNOWN status or a reply that is not a stop word); opted-out; unknown-contact.
    """
    if event.reply_text is not None:
        return _apply_reply(session, event)
    handler = _HANDLERS.get(event.status)
    if handler is None:
        log.info("report from %s ignored: status %s, code %s, event %s", event.provider, event.status.value,
                 event.provider_code, event.event_id)
        return "ignored"
    message = find_message(session, event)
    if message is None:
        log.info("report from %s for an unknown message (ref %s, event %s)", event.provider, event.provider_ref,
                 event.event_id)
        return "unknown-message"
    return handler(session, message, event)


def find_message(session: Session, event: DeliveryEvent) -> Message | None:
    """The message an event is about, only if it went through the provider whose endpoint received the event:
    by (provider, provider reference), else by our id when that provider is the one recorded, or, none being
    recorded yet (a report that beat our SENT record), when it is on the message's route. Another provider's
    endpoint (or a forged report on it) can never touch the message."""
    if event.provider_ref:
        found = session.scalars(select(Message).where(Message.provider == event.provider,
                                                      Message.provider_ref == event.provider_ref).limit(1)).first()
        if found is not None:
            return found
    if event.message_id and len(event.message_id) <= 36:  # our ids are UUIDs; anything longer is not ours
        found = session.get(Message, event.message_id)
        if found is not None and _sent_through(session, found, event.provider):
            return found
    return None


def _sent_through(session: Session, message: Message, provider: str) -> bool:
    if message.provider is not None:
        return message.provider == provider
    if message.merchant_id is None:
        return False
    route = provider_order(session, message.merchant_id, message.channel, message.message_type,
                           get_settings().default_provider)
    return provider in route


def _delivered(session: Session, message: Message, event: DeliveryEvent) -> str:
    minutes = voice_minutes(message, event)
    fields = _identity(event) | (_real_minutes(minutes) if minutes is not None else {})
    if not transition(session, message.id, REPORTABLE, MessageState.DELIVERED, detail=_detail(event), **fields):
        return "unchanged"
    return "delivered"


def _real_minutes(minutes: int) -> dict[str, Any]:
    """A call's billed minutes and the cost they come to (unless its provider priced it)."""
    return {"units": minutes, "cost_micros": repriced_cost(get_settings().unit_prices, Channel.VOICE.value, minutes)}


def _failed(session: Session, message: Message, event: DeliveryEvent) -> str:
    """FAILED gives the reserved units back only when this report made the move, so replays give back nothing."""
    why = f"provider reported failure {event.provider_code or ''}".strip()[:500]
    if not transition(session, message.id, REPORTABLE, MessageState.FAILED, detail=_detail(event),
                      error_code=Code.PROVIDER_REJECTED.value, error_detail=why, **_identity(event)):
        return "unchanged"
    return "failed"


def _accepted(session: Session, message: Message, event: DeliveryEvent) -> str:
    if not transition(session, message.id, ACCEPTABLE, MessageState.SENT, detail=_detail(event), **_identity(event)):
        return "unchanged"
    return "sent"


_HANDLERS: dict[DeliveryStatus, Callable[[Session, Message, DeliveryEvent], str]] = {
    DeliveryStatus.DELIVERED: _delivered,
    DeliveryStatus.FAILED: _failed,
    DeliveryStatus.ACCEPTED: _accepted,
}


def _identity(event: DeliveryEvent) -> dict[str, Any]:
    """Fill provider and provider reference only where they are still missing (evaluated in the UPDATE itself,
    so a concurrent dispatch record is never overwritten)."""
    fields: dict[str, Any] = {"provider": func.coalesce(MESSAGE_COLUMNS.provider, event.provider)}
    if event.provider_ref:
        fields["provider_ref"] = func.coalesce(MESSAGE_COLUMNS.provider_ref, event.provider_ref[:128])
    return fields


def _detail(event: DeliveryEvent) -> dict[str, Any]:
    """What the history row keeps of a report: ids, code, times and the raw payload scrubbed of personal data."""
    detail: dict[str, Any] = {"via": "dlr", "provider": event.provider, "raw": storable_raw(event.raw)}
    for key, value in (("eventId", event.event_id), ("providerCode", event.provider_code),
                       ("durationSeconds", event.duration_seconds)):
        if value is not None:
            detail[key] = value
    if event.occurred_at is not None:
        detail["occurredAt"] = event.occurred_at.isoformat()
    return detail


# -- voice settlement --------------------------------------------------------------------------------------------


def voice_minutes(message: Message, event: DeliveryEvent) -> int | None:
    """Billed minutes of a delivered call (started minutes), or None when there is nothing to settle."""
    return billed_minutes(event.duration_seconds) if message.channel == Channel.VOICE.value else None


# -- replies -----------------------------------------------------------------------------------------------------


def is_stop_request(text: str | None) -> bool:
    """True when the first word of ``text`` (any case, surrounding punctuation ignored) is a stop word."""
    words = (text or "").strip().split()
    return bool(words) and words[0].strip(_TRIM).upper() in STOP_WORDS


def _apply_reply(session: Session, event: DeliveryEvent) -> str:
    if not is_stop_request(event.reply_text):
        return "ignored"
    if not provider_is_authenticated(event.provider):
        log.warning("stop reply via %s ignored: the provider has no webhook secret, so the reply is not "
                    "authenticated (event %s)", event.provider, event.event_id)
        return "unauthenticated"
    message = find_message(session, event) if (event.message_id or event.provider_ref) else None
    if message is not None and message.channel != Channel.SMS.value:
        message = None
    contact = _reply_number(event.reply_from) or (message.recipient if message is not None else None)
    if contact is None:
        log.info("stop reply via %s without a readable number (event %s)", event.provider, event.event_id)
        return "unknown-contact"
    merchants = [message.merchant_id] if message is not None and message.merchant_id is not None \
        else _merchants_who_sent_from(session, contact, event.reply_to, event.provider)
    for merchant_id in merchants:
        set_consent(session, merchant_id, Channel.SMS.value, contact, ConsentStatus.OPT_OUT, "sms-reply")
    log.info("stop reply from %s via %s: opted out for %d merchant(s)", mask_phone(contact), event.provider,
             len(merchants))
    return "opted-out" if merchants else "unknown-contact"


def _reply_number(raw: str | None) -> str | None:
    """The E.164 form of a reply's sender; many providers drop the '+', so digits alone are tried with one."""
    if not raw:
        return None
    candidates = [raw] + (["+" + raw.strip()] if raw.strip().isdigit() else [])
    for candidate in candidates:
        try:
            return normalize_phone(candidate, channel="VOICE", field="from")
        except Refusal:
            continue
    return None


def _merchants_who_sent_from(session: Session, contact: str, our_number: str | None, provider: str) -> list[int]:
    """Merchants whose SMS (not REFUSED) reached ``contact`` from ``our_number`` (the number the reply was sent
    to) through ``provider``. A reply that names no number cannot be attributed, so it opts nobody out: a STOP is
    a merchant's business, and one reply must never silence every tenant's merchants."""
    digits = "".join(ch for ch in our_number or "" if ch.isdigit())
    if not digits:
        return []
    rows = session.scalars(select(Message.merchant_id).distinct().where(
        Message.channel == Channel.SMS.value, Message.recipient == contact, Message.merchant_id.is_not(None),
        Message.status != MessageState.REFUSED.value, Message.provider == provider,
        func.replace(Message.sender, "+", "") == digits)).all()
    return sorted(int(m) for m in rows if m is not None)


def provider_is_authenticated(provider: str) -> bool:
    """True when the provider instance has a webhook secret, so what its endpoint passed on was signed."""
    options = get_settings().providers.get(provider) or {}
    return bool(options.get("webhook_secret") or options.get("callback_secret"))


# -- batches through the broker ----------------------------------------------------------------------------------


def apply_batch(provider_name: str, events_json: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Apply each event in its own transaction (one bad event cannot undo the others); the count per outcome.

    Connection failures propagate so the caller can retry the whole batch: replaying applied events is harmless.
    A row the database refuses (a value too long, say) is logged and counted as ``error``.
    """
    counts: Counter[str] = Counter()
    for event in events_from_json(events_json, provider_name):
        try:
            with session_scope() as session:
                counts[apply_event(session, event) if first_time(session, event) else "replayed"] += 1
        except (DataError, IntegrityError) as err:
            log.warning("report from %s (event %s) refused by the database: %s", provider_name, event.event_id,
                        type(err).__name__)
            counts["error"] += 1
    return dict(counts)


def first_time(session: Session, event: DeliveryEvent) -> bool:
    """Record (provider, event id) in the caller's transaction; False when it was already applied (a replay or a
    redelivered webhook). Rolled back with the event if applying it fails, so a retry applies it then."""
    return not event.event_id or record_event(session, event.provider, event.event_id)


def record_event(session: Session, source: str, event_id: str) -> bool:
    """Record (source, event id) in the caller's transaction; False when it was there already. For every signed
    webhook whose events must apply once: provider reports here, registrar decisions (worker/policy/tendlc.py)."""
    inserted = session.execute(upsert_insert(session, InboundEvent).values(
        provider=source[:64], event_id=event_id[:200]).on_conflict_do_nothing()
        .returning(InboundEvent.event_id)).first()
    return inserted is not None


def events_to_json(events: Sequence[DeliveryEvent]) -> list[dict[str, Any]]:
    """Events as JSON-safe dicts (ISO times, raw made JSON-safe) for a JSON-only broker."""
    return [{
        "provider": e.provider, "status": e.status.value, "providerRef": e.provider_ref, "messageId": e.message_id,
        "eventId": e.event_id, "occurredAt": e.occurred_at.isoformat() if e.occurred_at else None,
        "providerCode": e.provider_code, "durationSeconds": e.duration_seconds, "replyFrom": e.reply_from,
        "replyTo": e.reply_to, "replyText": e.reply_text, "raw": _json_safe(e.raw),
    } for e in events]


def events_from_json(data: Iterable[object], provider: str | None = None) -> list[DeliveryEvent]:
    """The events back; ``provider`` (the webhook's provider) wins over what each item claims. Values of the wrong
    type become None and an unknown status UNKNOWN, so a damaged item is ignored rather than misapplied."""
    return [DeliveryEvent(
        provider=provider or str(item.get("provider") or ""), status=_status(item.get("status")),
        provider_ref=_str(item.get("providerRef")), message_id=_str(item.get("messageId")),
        event_id=_str(item.get("eventId")), occurred_at=_time(item.get("occurredAt")),
        provider_code=_str(item.get("providerCode")), duration_seconds=_int(item.get("durationSeconds")),
        reply_from=_str(item.get("replyFrom")), reply_to=_str(item.get("replyTo")),
        reply_text=_str(item.get("replyText")), raw=item.get("raw"),
    ) for item in data if isinstance(item, Mapping)]


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _status(value: object) -> DeliveryStatus:
    try:
        return DeliveryStatus(str(value))
    except ValueError:
        return DeliveryStatus.UNKNOWN


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None
