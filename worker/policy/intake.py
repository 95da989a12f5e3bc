"""Intake of send jobs (docs/contract.md section 3), atomically per message, in the order of the README's Policy.

Request-level steps come first (shape, credentials, merchant, idempotency, activity, fields,
schedule, recipient counts), then each message's own (recipient, body, route, consent,
duplicate window, quota); see the README for why that differs from the numbering of docs/contract.md.

The request row (idempotency) and every message are written in one transaction; each
message's policy steps (route, consent, duplicate window, quota, insert) run inside a
savepoint, so a refusal undoes exactly that message's claims. A job of one message skips the
savepoint (two round trips of the hottest path): its only claim a later step can refuse after
is the duplicate window's, which a quota refusal releases itself. Nothing is enqueued here:
the caller publishes dispatch work after the commit, and the outbox relay re-publishes
anything a crash in between left behind.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from schema.models import Merchant, Message
from schema.states import Freshness, MessageState, RequestStatus
from worker.catalogue import Code
from worker.contract import EmailJob, SmsJob, VoiceJob
from worker.dispatch_item import DispatchItem
from worker.errors import AuthenticationError, Refusal
from worker.policy.auth import Authenticator, Principal, by_secret
from worker.policy.campaigns import campaign_answer, create_campaign, is_campaign_send, sms_plan
from worker.policy.consent import Recipient
from worker.policy.drafts import Draft, Drafts, email_drafts, sms_drafts, voice_drafts
from worker.policy.duplicates import claim_window, content_digest, release_window, waive_rule_applies
from worker.policy.idempotency import begin_request, finish_request, payload_digest
from worker.policy.jobs import SEND_JOBS, parse_job
from worker.policy.merchants import load_merchant, require_route
from worker.policy.pricing import table_cost
from worker.policy.quota import reserve_units
from worker.policy.tendlc_send import require_10dlc
from worker.policy.transitions import queue_final_callback, utcnow
from worker.settings import get_settings
from worker.validation.masking import mask_contact

__all__ = ["IntakeOutcome", "accept_send", "record_refused_request", "resolve_caller"]

SendJob = SmsJob | VoiceJob | EmailJob
#: Messages are written with one Core INSERT (no ORM unit of work: nothing here reads them back as objects).
_INSERT_MESSAGE = insert(cast(Table, Message.__table__))


@dataclass
class IntakeOutcome:
    """The answer to the sender, and the messages to publish for dispatch once committed."""

    result: dict[str, Any]
    to_dispatch: list[DispatchItem] = field(default_factory=list)


def resolve_caller(session: Session, job: Any, who: Authenticator | None) -> Principal:
    """The principal behind a job: the door's authenticator, else (in-process callers only) the payload's ``auth``.

    A door that authenticated the caller refuses credentials in the payload: on the broker they would be readable by
    anyone who can read a queue.
    """
    credentials = getattr(job, "auth", None)
    if who is not None and credentials is not None:
        raise AuthenticationError(Code.AUTHENTICATION_FAILED, "credentials never travel in the payload: sign the job "
                                  "(broker) or send X-API-KEY/X-API-SECRET headers (HTTP)", field="auth")
    if who is None:
        if credentials is None:
            raise AuthenticationError(Code.AUTHENTICATION_FAILED, "credentials missing", field="auth")
        who = by_secret(credentials.key_id, credentials.secret)
    return who(session)


def accept_send(session: Session, task_name: str, payload: Any, request_id: str, who: Authenticator | None, *,
                now: dt.datetime, window_seconds: int) -> IntakeOutcome:
    """Admit one send job. Raises :class:`Refusal` for a job refused as a whole (nothing written).

    The request is claimed (idempotency) as soon as its scope, (merchant, key), is known: before
    the merchant's activity, the schedule window or a list's members are read, so a retry gets
    the first answer even when one of those changed since.
    """
    check_payload_size(payload)
    job = parse_job(task_name, payload, SEND_JOBS)
    principal = resolve_caller(session, job, who)
    channel = {"SmsJob": "SMS", "VoiceJob": "VOICE", "EmailJob": "EMAIL"}[type(job).__name__]
    principal.require(task_name, channel)
    principal.require_merchant(job.merchant_id)
    merchant = load_merchant(session, principal.tenant_id, job.merchant_id, must_be_active=False)
    earlier = begin_request(session, request_id, tenant_id=principal.tenant_id, merchant_id=merchant.id,
                            kind=task_name, idempotency_key=job.idempotency_key, digest=payload_digest(payload))
    if earlier is not None:
        # A campaign's messages are its chunks' to publish (they republish after a crash), not the intake's.
        mine = earlier.get("requestId") == request_id and "campaign" not in earlier
        return IntakeOutcome(earlier, _still_queued(session, request_id) if mine else [])
    _require_active(merchant)
    if isinstance(job, SmsJob) and is_campaign_send(job):
        return _accept_campaign(session, job, merchant, request_id, now)
    drafts = _drafts(session, job, merchant, now)
    _apply_duplicate_waiver(drafts, principal.allowed_jobs)
    outcome = _admit_all(session, request_id, merchant, drafts, window_seconds, now)
    finish_request(session, request_id, RequestStatus(outcome.result["status"]), outcome.result)
    return outcome


def _accept_campaign(session: Session, job: SmsJob, merchant: Merchant, request_id: str,
                     now: dt.datetime) -> IntakeOutcome:
    """A list, scheduled or multi-recipient MKT send: one campaign row, answered at once with its planned count.

    The route is checked here (a disabled route refuses the whole send, as it would every message); consent,
    duplicates and quota are checked per recipient when each chunk runs, with what is true then.
    """
    plan = sms_plan(session, job, merchant, now)
    require_route(session, merchant.id, "SMS", plan.message_type)
    campaign = create_campaign(session, merchant, request_id, plan, now)
    result = campaign_answer(request_id, merchant, campaign, plan.warnings)
    finish_request(session, request_id, RequestStatus.ACCEPTED, result)
    return IntakeOutcome(result)


def check_payload_size(payload: Any) -> None:
    """Refuse (E829) a send job larger than HEXAVOX_MAX_PAYLOAD_BYTES before any of it is parsed or checked: one
    oversized job would otherwise hold a worker and a transaction for seconds and write a megabyte answer."""
    cap = get_settings().max_payload_bytes
    size = len(json.dumps(payload, ensure_ascii=False, default=str).encode())
    if size > cap:
        raise Refusal(Code.PAYLOAD_TOO_LARGE, f"the job is {size} bytes; at most {cap}")


def _still_queued(session: Session, request_id: str) -> list[DispatchItem]:
    """The messages of a redelivered job that still wait for dispatch: publish them again.

    The broker gives a job back when its worker died, possibly after the intake committed but before it
    published dispatch; republishing is safe (dispatch claims QUEUED -> DISPATCHING once) and closes that gap
    at once instead of leaving it to the outbox relay's safety pass.
    """
    rows = session.execute(select(Message.id, Message.channel, Message.message_type).where(
        Message.request_id == request_id, Message.status == MessageState.QUEUED.value)).all()
    return [DispatchItem(r[0], r[1], r[2]) for r in rows]


def _require_active(merchant: Merchant) -> None:
    """E804 for an inactive merchant; checked after the idempotency claim, which an earlier answer settles."""
    if not merchant.active:
        raise Refusal(Code.MERCHANT_INACTIVE, "merchant is not active", field="merchantId")


def _drafts(session: Session, job: SendJob, merchant: Merchant, now: dt.datetime) -> Drafts:
    if isinstance(job, SmsJob):
        return sms_drafts(session, job, merchant, now)
    if isinstance(job, VoiceJob):
        return voice_drafts(job, merchant)
    return email_drafts(job)


def _apply_duplicate_waiver(drafts: Drafts, allowed_jobs: frozenset[str]) -> None:
    """Keep ``duplicate`` on the messages only when the key may waive the guard, so dispatch tells the provider."""
    asked = any(draft.options.get("duplicate") for draft in drafts.drafts)
    waived = waive_rule_applies(asked, allowed_jobs, drafts.warnings)
    for draft in drafts.drafts:
        if "duplicate" in draft.options:
            draft.options["duplicate"] = waived


def _admit_all(session: Session, request_id: str, merchant: Merchant, drafts: Drafts, window: int,
               now: dt.datetime) -> IntakeOutcome:
    rows, to_dispatch = [], []
    alone = len(drafts.drafts) == 1
    for draft in drafts.drafts:
        status = _admit_one(session, request_id, merchant, draft, drafts.scheduled_at, window, now, alone=alone)
        rows.append(_row(draft, status))
        if status == MessageState.QUEUED:
            to_dispatch.append(DispatchItem(draft.message_id, draft.channel.value, draft.message_type))
    accepted = sum(1 for row in rows if row["status"] != MessageState.REFUSED)
    overall = RequestStatus.ACCEPTED if accepted == len(rows) else (
        RequestStatus.PARTIAL if accepted else RequestStatus.REFUSED)
    result = {"requestId": request_id, "merchantId": merchant.external_id, "status": overall.value,
              "messages": rows, "warnings": drafts.warnings}
    return IntakeOutcome(result, to_dispatch)


def _admit_one(session: Session, request_id: str, merchant: Merchant, draft: Draft, scheduled_at: dt.datetime | None,
               window: int, now: dt.datetime, *, alone: bool) -> MessageState:
    """Policy steps 2-7 for one message; a refusal is recorded as a free, FINAL message.

    Among several messages each runs in a savepoint, so a refusal undoes exactly its claims. The one message of a
    job (``alone``) needs none: every step refuses before it writes, but quota after the duplicate window's claim,
    and :func:`_run_policy` releases that claim itself. A waived claim (``duplicate=1``) may have replaced another
    message's live claim, which only a rollback restores: it keeps the savepoint.
    """
    if draft.refusal is None:
        lean = alone and not draft.options.get("duplicate")
        savepoint = None if lean else session.begin_nested()
        try:
            status = MessageState.SCHEDULED if scheduled_at else MessageState.QUEUED
            _run_policy(session, merchant, draft, window, now, release_on_refusal=lean)
            session.execute(_INSERT_MESSAGE, _message(request_id, merchant, draft, status, scheduled_at))
            if savepoint is not None:
                savepoint.commit()
            return status
        except Refusal as refusal:
            if savepoint is not None:
                savepoint.rollback()
            draft.refusal = refusal
    assert draft.refusal is not None
    session.execute(_INSERT_MESSAGE, _message(request_id, merchant, draft, MessageState.REFUSED, None))
    _callback_refused(session, request_id, merchant, draft)
    return MessageState.REFUSED


def _callback_refused(session: Session, request_id: str, merchant: Merchant, draft: Draft) -> None:
    """A refused message is FINAL at once, so its ``dlrUrl`` hears so like any other FINAL message does.

    Written in the intake transaction: a rolled-back intake (retried by ``_retrying``) leaves no callback behind.
    """
    url = draft.options.get("dlrUrl")
    if not url or draft.refusal is None:
        return
    queue_final_callback(session, draft.message_id, merchant.id, request_id, MessageState.REFUSED, str(url),
                         utcnow(), error_code=draft.refusal.code.value, units=0, options=draft.options)


def _run_policy(session: Session, merchant: Merchant, draft: Draft, window: int, now: dt.datetime, *,
                release_on_refusal: bool) -> None:
    """The message's policy steps. Only quota may refuse after a write (the window's claim); with
    ``release_on_refusal`` (no savepoint around this) it releases that claim before refusing."""
    channel = draft.channel.value
    if channel == "SMS":
        require_route(session, merchant.id, channel, draft.message_type)
        require_10dlc(session, merchant.id, draft.sender, draft.recipient, draft.message_type)
    # Consent, then the duplicate window: one statement, refusing with the consent code first as two would.
    digest = content_digest(merchant.id, channel, draft.recipient, draft.subject, draft.body)
    claim_window(session, digest, draft.message_id, window, waived=bool(draft.options.get("duplicate")),
                 consent=Recipient(merchant.id, channel, draft.recipient, draft.message_type))
    try:
        # Charged to the period it is accepted in, whenever it is sent or settled: just before the boundary is the
        # old one.
        draft.period_start = reserve_units(session, merchant, channel, draft.units, now)
    except Refusal:
        if release_on_refusal:
            release_window(session, digest, draft.message_id)
        raise


def _message(request_id: str, merchant: Merchant, draft: Draft, status: MessageState,
             scheduled_at: dt.datetime | None) -> dict[str, Any]:
    """The message row's values (the columns left out take their defaults)."""
    refused = status == MessageState.REFUSED
    return dict(
        id=draft.message_id, request_id=request_id, merchant_id=merchant.id, channel=draft.channel.value,
        message_type=draft.message_type, recipient=draft.recipient, sender=draft.sender, subject=draft.subject,
        body=draft.body, options=draft.options, units=0 if refused else draft.units, status=status.value,
        cost_micros=0 if refused else table_cost(get_settings().unit_prices, draft.channel.value, draft.units),
        freshness=(Freshness.FINAL if refused else Freshness.PROVISIONAL).value, scheduled_at=scheduled_at,
        period_start=None if refused else draft.period_start,
        error_code=draft.refusal.code.value if refused and draft.refusal else None,
        error_detail=draft.refusal.detail[:500] if refused and draft.refusal else None,
    )


def _row(draft: Draft, status: MessageState) -> dict[str, Any]:
    # The answer is kept in the result backend and shown by Flower: the recipient only masked (the caller has it).
    row: dict[str, Any] = {"messageId": draft.message_id, "to": mask_contact(draft.recipient),
                           "channel": draft.channel.value, "status": status.value}
    if status == MessageState.REFUSED and draft.refusal is not None:
        row["error"] = draft.refusal.as_dict()
    else:
        row["units"] = draft.units
    return row


def record_refused_request(session: Session, request_id: str, task_name: str, refusal: Refusal,
                           payload: Any) -> dict[str, Any]:
    """Keep a request refused as a whole, so its id can be looked up later like any other."""
    result = {"requestId": request_id, "status": RequestStatus.REFUSED.value, "error": refusal.as_dict(),
              "messages": []}
    digest = payload_digest(payload) if isinstance(payload, dict) else "-"
    earlier = begin_request(session, request_id, tenant_id=None, merchant_id=None, kind=task_name[:40],
                            idempotency_key=None, digest=digest)
    if earlier is not None:
        return earlier
    finish_request(session, request_id, RequestStatus.REFUSED, result)
    return result


