"""Campaigns: list sends, scheduled multi-recipient sends and multi-recipient MKT sends kept as one row.

A campaign sends on one channel: SMS (the SMS send's rules), VOICE (the voice send's: text, ring timeout, record,
minutes) or EMAIL (the email send's: subject, HTML body, addresses); each channel's plan below checks its fields
exactly as that channel's single send does (:mod:`worker.policy.drafts`).

Intake checks what applies to the whole send (fields, schedule, list, counts), counts the recipients and writes one
campaign row: it never expands them, so a 100,000-member list is answered in milliseconds. Beat claims due campaigns
(:func:`claim_due`), and chunk tasks expand them (:mod:`worker.policy.campaign_chunks`). Pause, resume and cancel are
conditional UPDATEs on the row, so they act once however often they are sent.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from schema.models import Campaign, ContactList, ContactListMember, Merchant, Message, Request
from schema.states import CampaignState, Channel, MessageState, RequestStatus
from worker.catalogue import Code
from worker.contract import CampaignActionJob, CampaignCreateJob, SmsJob
from worker.errors import Refusal, ValidationError
from worker.policy.auth import Principal
from worker.policy.campaign_chunks import INFLIGHT, chunk_starts, last_position
from worker.policy.drafts import (
    TTS_CHARS_PER_MINUTE,
    _batch_nodes,
    _capped,
    _check_counts,
    _dlr_url,
    _optional_str,
    _sms_options,
    _split_to,
    _text,
)
from worker.policy.idempotency import payload_digest
from worker.policy.merchants import load_merchant, require_route
from worker.policy.transitions import MESSAGE_COLUMNS, transition_many, utcnow
from worker.validation import (
    check_campaign_name,
    check_channel,
    check_email_content,
    check_sender,
    check_sms_type,
    check_voice,
    encode_info,
    parse_schedule,
)

__all__ = ["CampaignPlan", "is_campaign_send", "sms_plan", "voice_plan", "email_plan", "create_campaign",
           "campaign_answer", "claim_due", "stalled", "pause", "resume", "cancel", "campaign_view", "find_campaign",
           "run_campaign_job", "publish_chunk_after_commit"]


@dataclass
class CampaignPlan:
    """What intake learnt about a campaign send without expanding its recipients."""

    message_type: str
    template: dict[str, Any]
    total: int
    scheduled_at: dt.datetime | None
    list_pk: int | None = None
    last_member_id: int = 0
    #: Inline recipients: [raw recipient, own body or None], in the order given.
    recipients: list[list[Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    name: str = ""
    channel: str = Channel.SMS.value


def _recipient_count(job: SmsJob) -> int:
    if job.sms is not None:
        return len(job.sms)
    if isinstance(job.to, str):
        return len([part for part in job.to.split(",") if part.strip()])
    return len(job.to) if isinstance(job.to, list) else 0


def is_campaign_send(job: SmsJob) -> bool:
    """A list send, or several recipients with ``time`` or of type MKT. Single sends keep the per-message path.

    Only the shape is looked at here: a send that breaks a rule (a TXN list, an OTP to two numbers) takes the
    per-message path, which refuses it with the same code as before.
    """
    kind = str(job.type or "").strip().upper()
    if job.sms is None and job.to in (None, "", []) and job.list_id:
        return kind == "MKT"
    several = _recipient_count(job) > 1
    return several and kind != "OTP" and (kind == "MKT" or job.time not in (None, ""))


def sms_plan(session: Session, job: SmsJob, merchant: Merchant, now: dt.datetime) -> CampaignPlan:
    """Job-wide checks in the order :func:`worker.policy.drafts.sms_drafts` runs them, recipients only counted."""
    sms_type = check_sms_type(job.type)
    sender = check_sender(job.sender)
    options = _sms_options(job)
    scheduled = parse_schedule(_optional_str(job.time, "time"), tz=merchant.timezone, now=now)
    plan = CampaignPlan(sms_type, {"sender": sender, "options": options}, 0, scheduled,
                        name=str(options.get("campaignName") or ""))
    _plan_recipients(session, job, merchant, plan)
    if plan.total == 0:
        raise Refusal(Code.INVALID_MOBILE_NUMBER, "no recipients (empty list)", field="to")
    _check_counts(sms_type, plan.total)
    plan.template["body"] = None if job.sms is not None and job.body in (None, "") else _text(
        job.body, "body", Code.BODY_EMPTY)
    if plan.template["body"] is not None:
        info = encode_info(plan.template["body"], options["unicode"])
        plan.template["units"] = info.segments
        options.update(encoding=info.encoding, segments=info.segments)
    return plan


def _plan_recipients(session: Session, job: SmsJob, merchant: Merchant, plan: CampaignPlan) -> None:
    if job.sms is not None:
        plan.recipients = [[to, body] for to, body in _batch_nodes(job)]
        plan.total = len(plan.recipients)
        return
    _plan_targets(session, job.to, job.list_id, merchant, plan)


def _plan_targets(session: Session, to: Any, list_id: str | None, merchant: Merchant, plan: CampaignPlan,
                  kind: str | None = None) -> None:
    """Recipients from ``to`` (kept inline, in order) or from ``listId`` (only counted: chunks read the members).

    ``kind``: the SMS type whose list rule applies (a list send is MKT), the plan's own type by default."""
    if to not in (None, "", []):
        if list_id:
            plan.warnings.append("both to and listId given: to is used, listId ignored")
        plan.recipients = [[raw, None] for raw in _capped(_split_to(to))]
        plan.total = len(plan.recipients)
        return
    _plan_list(session, list_id, merchant, plan, kind or plan.message_type)


def _plan_list(session: Session, list_id: str | None, merchant: Merchant, plan: CampaignPlan, kind: str) -> None:
    if not list_id:
        raise ValidationError(Code.LIST_ID_REQUIRED, "listId has to be filled", field="listId")
    if kind == "OTP":
        raise Refusal(Code.LIST_SEND_NOT_OTP, "a list send cannot be OTP", field="type")
    if kind != "MKT":
        raise Refusal(Code.BULK_MUST_BE_MKT, "a list send must be MKT", field="type")
    list_pk = session.scalars(select(ContactList.id).where(ContactList.merchant_id == merchant.id,
                                                           ContactList.external_id == list_id)).first()
    if list_pk is None:
        raise Refusal(Code.LIST_NOT_FOUND, "no such list for this merchant", field="listId")
    count, last = session.execute(select(func.count(), func.coalesce(func.max(ContactListMember.id), 0))
                                  .where(ContactListMember.list_id == list_pk)).one()
    plan.list_pk, plan.total, plan.last_member_id = list_pk, int(count), int(last)


#: The message types of a VOICE campaign (the voice send's), and an EMAIL campaign's short names for its own.
VOICE_TYPES = frozenset({"OTP", "TXN", "MKT", "REMINDER"})
EMAIL_TYPES = {"TXN": "TRANSACTIONAL", "MKT": "MARKETING", "TRANSACTIONAL": "TRANSACTIONAL",
               "MARKETING": "MARKETING"}
#: The SMS type whose recipient caps (OTP one, TXN at most 100, lists MKT only) a type of another channel takes.
_CAP_KIND = {"TRANSACTIONAL": "TXN", "MARKETING": "MKT", "REMINDER": "TXN"}


def _channel_type(value: Any, channel: str) -> str:
    """The campaign's message type as the channel's send names it (E611 when blank, E615 when not the channel's)."""
    if value is None or value == "":
        raise ValidationError(Code.TYPE_REQUIRED, "type is required", field="type")
    kind = value.strip().upper() if isinstance(value, str) else ""
    if channel == Channel.VOICE and kind in VOICE_TYPES:
        return kind
    if channel == Channel.EMAIL and kind in EMAIL_TYPES:
        return EMAIL_TYPES[kind]
    allowed = "TXN, MKT, REMINDER or OTP" if channel == Channel.VOICE else "TXN, MKT, TRANSACTIONAL or MARKETING"
    raise ValidationError(Code.INVALID_TYPE, f"type of a {channel} campaign must be {allowed}", field="type")


def _as_body_field(err: ValidationError) -> ValidationError:
    """The voice send names its text ``text``; a campaign carries it in ``body``."""
    if err.field != "text":
        return err
    return ValidationError(err.code, err.detail.replace("text", "body", 1), field="body")


def _ignored(job: CampaignCreateJob, channel: str) -> list[str]:
    """Warnings for fields another channel's send takes: given here, they change nothing."""
    other = {"sender": job.sender not in (None, ""), "unicode": job.unicode not in (None, "AUTO"),
             "flash": job.flash not in (None, 0, "0", False), "ref": job.ref not in (None, ""),
             "record": job.record is not False, "timeoutSeconds": job.timeout_seconds != 30,
             "subject": job.subject not in (None, "")}
    own = {"SMS": {"sender", "unicode", "flash", "ref"}, "VOICE": {"record", "timeoutSeconds"},
           "EMAIL": {"subject"}}[channel]
    return [f"{name} is not used by {channel} campaigns" for name, given in other.items() if given and name not in own]


def _open_plan(job: CampaignCreateJob, merchant: Merchant, channel: str, now: dt.datetime) -> CampaignPlan:
    """The fields every non-SMS campaign shares: type, schedule, name, dlrUrl (the SMS order: fields, schedule)."""
    kind = _channel_type(job.type, channel)
    name = check_campaign_name(job.name) or ""
    options: dict[str, Any] = {"dlrUrl": _dlr_url(job.dlr_url)}
    scheduled = parse_schedule(_optional_str(job.time, "time"), tz=merchant.timezone, now=now)
    plan = CampaignPlan(kind, {"sender": "", "options": options}, 0, scheduled, name=str(name), channel=channel)
    plan.warnings.extend(_ignored(job, channel))
    return plan


def _count_targets(session: Session, job: CampaignCreateJob, merchant: Merchant, plan: CampaignPlan) -> None:
    """Recipients planned and counted with the SMS campaign's caps for the type's SMS equivalent."""
    cap_kind = _CAP_KIND.get(plan.message_type, plan.message_type)
    _plan_targets(session, job.to, job.list_id, merchant, plan, cap_kind)  # a list send is MKT, as for SMS
    if plan.total == 0:
        raise Refusal(Code.INVALID_MOBILE_NUMBER, "no recipients (empty list)", field="to")
    _check_counts(cap_kind, plan.total)


def voice_plan(session: Session, job: CampaignCreateJob, merchant: Merchant, now: dt.datetime) -> CampaignPlan:
    """A VOICE campaign: the voice send's checks (text, ring timeout, record) and its minutes, estimated from the
    text as :func:`worker.policy.drafts.voice_drafts` does; recipients are numbers in ``to`` or a list's members."""
    plan = _open_plan(job, merchant, Channel.VOICE.value, now)
    try:
        call = check_voice(job.body, job.timeout_seconds, job.record)
    except ValidationError as err:
        raise _as_body_field(err) from None
    plan.template["options"].update(record=call.record, timeoutSeconds=call.timeout_seconds)
    _count_targets(session, job, merchant, plan)
    plan.template.update(body=call.text, units=max(1, math.ceil(len(call.text) / TTS_CHARS_PER_MINUTE)))
    return plan


def email_plan(session: Session, job: CampaignCreateJob, merchant: Merchant, now: dt.datetime) -> CampaignPlan:
    """An EMAIL campaign: the email send's checks (a subject safe as a header, the HTML body's size), one unit a
    message; recipients are the addresses in ``to``. Lists hold phone numbers, so ``listId`` alone is refused."""
    plan = _open_plan(job, merchant, Channel.EMAIL.value, now)
    content = check_email_content(job.subject, job.body)
    if job.to in (None, "", []) and job.list_id not in (None, ""):
        raise Refusal(Code.CAMPAIGN_CHANNEL_UNSUPPORTED,
                      "EMAIL campaigns take `to` addresses; lists hold phone numbers", field="listId")
    if job.to in (None, "", []):
        raise ValidationError(Code.TO_REQUIRED, "to has to be filled with email addresses", field="to")
    _count_targets(session, job, merchant, plan)
    plan.template.update(subject=content.subject, body=content.body, units=1)
    return plan


def create_campaign(session: Session, merchant: Merchant, request_id: str, plan: CampaignPlan,
                    now: dt.datetime) -> Campaign:
    """One campaign row: SCHEDULED for a later time, else RUNNING with its first chunk published after commit."""
    due_now = plan.scheduled_at is None
    campaign = Campaign(
        merchant_id=merchant.id, request_id=request_id, list_id=plan.list_pk, name=plan.name[:32],
        channel=plan.channel, message_type=plan.message_type,
        state=(CampaignState.RUNNING if due_now else CampaignState.SCHEDULED).value,
        scheduled_at=plan.scheduled_at or now, payload={**plan.template, "recipients": plan.recipients},
        total=plan.total, queued=0, processed=0, refused=0, cursor=0, last_member_id=plan.last_member_id,
        started_at=now if due_now else None, progressed_at=now if due_now else None)
    session.add(campaign)
    session.flush()
    if due_now:
        publish_chunk_after_commit(session, campaign.id, 0)
    return campaign


def campaign_answer(request_id: str, merchant: Merchant, campaign: Campaign, warnings: list[str]) -> dict[str, Any]:
    """The intake answer of a campaign send: at once, with the campaign id and how many recipients it will try."""
    return {"requestId": request_id, "merchantId": merchant.external_id, "status": RequestStatus.ACCEPTED.value,
            "code": Code.CAMPAIGN_ACCEPTED.value,
            "campaign": {"campaignId": campaign.request_id, "state": campaign.state, "planned": campaign.total,
                         "scheduledAt": campaign.scheduled_at.isoformat()},
            "messages": [], "warnings": warnings}


def publish_chunk_after_commit(session: Session, campaign_id: int, cursor: int) -> None:
    """Start a chunk task once this transaction commits (nothing is published for a transaction rolled back).

    Lost publishes are covered by beat: a RUNNING campaign whose cursor stays still is started again.
    """
    pending: list[tuple[int, int]] = session.info.setdefault("campaign_chunks", [])
    if not pending:
        event.listen(session, "after_commit", _publish_pending, once=True)
        event.listen(session, "after_rollback", lambda s: s.info.pop("campaign_chunks", None), once=True)
    pending.append((campaign_id, cursor))


def _publish_pending(session: Session) -> None:
    from worker.publish import publish_campaign_chunks

    publish_campaign_chunks(session.info.pop("campaign_chunks", []))


def claim_due(session: Session, now: dt.datetime) -> list[tuple[int, int]]:
    """SCHEDULED campaigns whose time has come, moved to RUNNING by one conditional UPDATE each claims once.

    Two beats running the same tick: PostgreSQL re-checks ``state = 'SCHEDULED'`` on the row a concurrent
    UPDATE committed, so the second finds nothing. A beat that was down claims everything overdue at once.
    """
    rows = session.execute(update(Campaign).where(Campaign.state == CampaignState.SCHEDULED.value,
                                                  Campaign.scheduled_at <= now)
                           .values(state=CampaignState.RUNNING.value, started_at=now, progressed_at=now)
                           .returning(Campaign.id)).all()
    return _starts(session, [int(r[0]) for r in rows])


def _starts(session: Session, campaign_ids: list[int]) -> list[tuple[int, int]]:
    """(campaign id, cursor) of every chunk the campaigns need now: each range left in flight, then the cursor."""
    if not campaign_ids:
        return []
    campaigns = session.scalars(select(Campaign).where(Campaign.id.in_(campaign_ids)).order_by(Campaign.id)).all()
    return [(c.id, start) for c in campaigns
            for start in chunk_starts(int(c.cursor), c.payload.get(INFLIGHT), last_position(c))]


def stalled(session: Session, now: dt.datetime, stall_seconds: int) -> list[tuple[int, int]]:
    """RUNNING campaigns where no chunk claimed or wrote for ``stall_seconds``: their chunk tasks were lost; restart
    them (every range left in flight, and the cursor). Copies of a chunk still alive are harmless: a range is
    written once, and only the chunk at the cursor moves it."""
    cutoff = now - dt.timedelta(seconds=stall_seconds)
    rows = session.execute(update(Campaign).where(Campaign.state == CampaignState.RUNNING.value,
                                                  Campaign.progressed_at <= cutoff)
                           .values(progressed_at=now).returning(Campaign.id)).all()
    return _starts(session, [int(r[0]) for r in rows])


def find_campaign(session: Session, tenant_id: int, merchant_id: str, campaign_id: str, *,
                  lock: bool = False) -> Campaign:
    """The merchant's campaign by id (its request id); another tenant's is simply not found (E880)."""
    stmt = (select(Campaign).join(Merchant, Merchant.id == Campaign.merchant_id)
            .where(Merchant.tenant_id == tenant_id, Merchant.external_id == merchant_id,
                   Campaign.request_id == campaign_id))
    campaign = session.scalars(stmt.with_for_update(of=Campaign) if lock else stmt).first()
    if campaign is None:
        raise Refusal(Code.CAMPAIGN_NOT_FOUND, "no such campaign for this merchant", field="campaignId")
    return campaign


def _require_state(campaign: Campaign, allowed: set[CampaignState], action: str) -> None:
    if CampaignState(campaign.state) not in allowed:
        raise Refusal(Code.CAMPAIGN_STATE_CONFLICT, f"a {campaign.state} campaign cannot be {action}",
                      field="campaignId")


def pause(campaign: Campaign) -> None:
    """No new chunk starts; a chunk already running finishes its own recipients. Pausing twice is a no-op."""
    if campaign.state == CampaignState.PAUSED:
        return
    _require_state(campaign, {CampaignState.SCHEDULED, CampaignState.RUNNING}, "paused")
    campaign.state = CampaignState.PAUSED.value


def resume(session: Session, campaign: Campaign, now: dt.datetime) -> None:
    """Continue exactly where it stopped: RUNNING, with a chunk for every range a pause left in flight and one at
    the cursor (published after commit), when due; else SCHEDULED again."""
    if campaign.state in (CampaignState.RUNNING, CampaignState.SCHEDULED):
        return
    _require_state(campaign, {CampaignState.PAUSED}, "resumed")
    if campaign.scheduled_at > now:
        campaign.state = CampaignState.SCHEDULED.value
        return
    campaign.state, campaign.progressed_at = CampaignState.RUNNING.value, now
    campaign.started_at = campaign.started_at or now
    for start in chunk_starts(int(campaign.cursor), campaign.payload.get(INFLIGHT), last_position(campaign)):
        publish_chunk_after_commit(session, campaign.id, start)


def cancel(session: Session, campaign: Campaign, now: dt.datetime) -> None:
    """Refuse, free of charge (E882), the recipients not expanded yet and the messages no worker has claimed.

    The move (:func:`~worker.policy.transitions.transition_many`) locks the waiting messages first, so a dispatch
    cannot claim one between counting its units and refusing it: the units given back, each to the billing period
    it was charged to, are exactly those of the messages refused.
    Each refused message is FINAL, so its ``dlrUrl`` gets its callback; a recipient never expanded has no
    message and is only counted. Chunks write while holding the campaign row FOR KEY SHARE, so the row lock
    taken here waits for the ones writing: ``total - processed`` are exactly the recipients no chunk wrote.
    """
    if campaign.state == CampaignState.CANCELLED:
        return
    _require_state(campaign, {CampaignState.SCHEDULED, CampaignState.RUNNING, CampaignState.PAUSED}, "cancelled")
    transition_many(session, MESSAGE_COLUMNS.request_id == campaign.request_id, [MessageState.QUEUED],
                    MessageState.REFUSED, error_code=Code.CAMPAIGN_CANCELLED.value, error_detail="campaign cancelled",
                    detail={"code": Code.CAMPAIGN_CANCELLED.value, "why": "campaign cancelled"})
    remaining = campaign.total - campaign.processed
    campaign.state, campaign.finished_at = CampaignState.CANCELLED.value, now
    campaign.processed, campaign.refused = campaign.total, campaign.refused + remaining
    payload = dict(campaign.payload)
    payload["cancelledBeforeExpansion"] = remaining
    payload.pop(INFLIGHT, None)
    campaign.payload = payload


def campaign_view(session: Session, campaign: Campaign, merchant_external_id: str) -> dict[str, Any]:
    """State and counts, read at any time: planned, pending (not expanded yet), then messages by state and code."""
    by_state: dict[str, int] = {str(row[0]): int(row[1]) for row in session.execute(
        select(Message.status, func.count()).where(Message.request_id == campaign.request_id)
        .group_by(Message.status))}
    by_code = {str(code): int(n) for code, n in session.execute(select(Message.error_code, func.count()).where(
        Message.request_id == campaign.request_id, Message.status == MessageState.REFUSED.value)
        .group_by(Message.error_code)).all()}
    cancelled = int(campaign.payload.get("cancelledBeforeExpansion", 0))
    if cancelled:
        by_code[Code.CAMPAIGN_CANCELLED.value] = by_code.get(Code.CAMPAIGN_CANCELLED.value, 0) + cancelled
    counts: dict[str, Any] = {"planned": campaign.total, "pending": campaign.total - campaign.processed,
              **{state.value.lower(): int(by_state.get(state.value, 0)) for state in MessageState
                 if state != MessageState.SCHEDULED},
              "refusedByCode": dict(sorted(by_code.items()))}
    counts["refused"] += cancelled
    return {"campaignId": campaign.request_id, "merchantId": merchant_external_id, "name": campaign.name,
            "channel": campaign.channel, "type": campaign.message_type, "state": campaign.state,
            "scheduledAt": _iso(campaign.scheduled_at), "startedAt": _iso(campaign.started_at),
            "finishedAt": _iso(campaign.finished_at), "counts": counts}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _create_job(session: Session, who: Principal, job: CampaignCreateJob) -> dict[str, Any]:
    """hexavox.campaign.create.v1: the campaign's messages hang off a request of its own, whose id is its id."""
    channel = check_channel("SMS" if job.channel in (None, "") else job.channel)  # E821 for any other value
    merchant = load_merchant(session, who.tenant_id, job.merchant_id)
    now = utcnow()
    if channel == Channel.VOICE:
        plan = voice_plan(session, job, merchant, now)
    elif channel == Channel.EMAIL:
        plan = email_plan(session, job, merchant, now)
    else:
        plan = sms_plan(session, _as_sms(job), merchant, now)
        plan.warnings.extend(_ignored(job, channel))
        require_route(session, merchant.id, channel, plan.message_type)  # routes are SMS's, as for a single send
    campaign_id = str(uuid.uuid4())
    session.add(Request(id=campaign_id, tenant_id=who.tenant_id, merchant_id=merchant.id,
                        kind="hexavox.campaign.create.v1",
                        payload_sha256=payload_digest(job.model_dump(mode="json", exclude={"auth"})),
                        status=RequestStatus.ACCEPTED.value, result={}))
    session.flush()
    campaign = create_campaign(session, merchant, campaign_id, plan, now)
    answer = campaign_answer(campaign_id, merchant, campaign, plan.warnings)
    session.get(Request, campaign_id).result = answer  # type: ignore[union-attr]
    return {**answer["campaign"], "warnings": plan.warnings}


def _as_sms(job: CampaignCreateJob) -> SmsJob:
    """The SMS send job an SMS campaign is, so it is checked by the SMS send's own rules."""
    return SmsJob.model_validate({"merchantId": job.merchant_id, "to": job.to, "listId": job.list_id,
                                  "body": job.body, "sender": job.sender, "type": job.type, "time": job.time,
                                  "dlrUrl": job.dlr_url, "unicode": job.unicode, "flash": job.flash, "ref": job.ref,
                                  "campaignName": job.name})


def run_campaign_job(session: Session, who: Principal, job: CampaignCreateJob | CampaignActionJob,
                     _today: dt.date) -> dict[str, Any]:
    """The admin handler of every campaign job; refusals carry E880/E881/E883 or the channel's send's own codes."""
    from worker.contract import CampaignCancelJob, CampaignPauseJob, CampaignResumeJob

    if isinstance(job, CampaignCreateJob):
        return _create_job(session, who, job)
    now = utcnow()
    acting = isinstance(job, CampaignPauseJob | CampaignResumeJob | CampaignCancelJob)
    campaign = find_campaign(session, who.tenant_id, job.merchant_id, job.campaign_id, lock=acting)
    if isinstance(job, CampaignPauseJob):
        pause(campaign)
    elif isinstance(job, CampaignResumeJob):
        resume(session, campaign, now)
    elif isinstance(job, CampaignCancelJob):
        cancel(session, campaign, now)
    session.flush()
    return campaign_view(session, campaign, job.merchant_id)
