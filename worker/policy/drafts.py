"""Turn a validated job into per-recipient drafts: what each message would be, or why it is refused.

Job-wide problems (OTP with two numbers, a body too long) raise a :class:`Refusal` for the
whole request; a bad recipient refuses only its own message.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import ContactList, ContactListMember, Merchant
from schema.states import Channel
from worker.callbacks.egress import check_literal
from worker.catalogue import Code
from worker.contract import EmailJob, SmsJob, VoiceJob
from worker.errors import Refusal, ValidationError
from worker.policy.sip import AGENT_TYPES
from worker.settings import get_settings
from worker.validation import (
    check_campaign_id,
    check_campaign_name,
    check_duplicate_flag,
    check_email_content,
    check_flash_flag,
    check_port,
    check_ref,
    check_ref1,
    check_ref2,
    check_sender,
    check_sms_type,
    check_unicode_flag,
    check_voice,
    encode_info,
    normalize_email,
    normalize_phone,
    parse_schedule,
)

__all__ = ["Draft", "Drafts", "sms_drafts", "voice_drafts", "email_drafts", "MAX_SMS_NODES", "MAX_TXN_RECIPIENTS"]

MAX_SMS_NODES = 1000
MAX_TXN_RECIPIENTS = 100
TTS_CHARS_PER_MINUTE = 900  # ~15 characters a second of synthesised speech


@dataclass
class Draft:
    """One message before policy: its recipient (normalised), content, units, or the refusal it already has."""

    channel: Channel
    message_type: str
    recipient: str
    body: str
    units: int = 0
    sender: str = ""
    subject: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    refusal: Refusal | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: The billing period its units were charged to, once quota has taken them.
    period_start: dt.date | None = None


@dataclass
class Drafts:
    drafts: list[Draft]
    scheduled_at: dt.datetime | None = None
    warnings: list[str] = field(default_factory=list)


def _split_to(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return [item.strip() for item in raw if item.strip()]
    raise ValidationError(Code.INVALID_INPUT, "to must be a string or a list of strings", field="to")


def _phone_draft(raw: str, merchant: Merchant, channel: Channel, **kw: Any) -> Draft:
    try:
        e164 = normalize_phone(raw, channel=channel.value, allowed_countries=merchant.allowed_countries)
    except ValidationError as err:
        return Draft(channel=channel, recipient=raw[:64], refusal=err, **kw)
    return Draft(channel=channel, recipient=e164, **kw)


def _sms_options(job: SmsJob) -> dict[str, Any]:
    """The SMS job's optional fields, checked in the README's order, as each message keeps them."""
    return {"unicode": check_unicode_flag(job.unicode), "flash": check_flash_flag(job.flash),
            "duplicate": check_duplicate_flag(job.duplicate), "port": check_port(job.port),
            "ref": check_ref(job.ref), "ref1": check_ref1(job.ref1), "ref2": check_ref2(job.ref2),
            "campaignName": check_campaign_name(job.campaign_name), "campaignId": check_campaign_id(job.campaign_id),
            "dlrUrl": _dlr_url(job.dlr_url)}


def _dlr_url(url: str | None) -> str | None:
    """Every check that needs no DNS (syntax, port, a literal address) at intake, answered E819; the name is
    resolved and checked again when the callback connects (DNS may change)."""
    if url is None or url == "":
        return None
    settings = get_settings()
    try:
        check_literal(url, allow_private=settings.allow_private_callbacks, allowed_ports=settings.callback_ports)
    except ValidationError as err:
        raise ValidationError(Code.CALLBACK_URL_REFUSED, f"dlrUrl refused: {err.detail}", field="dlrUrl") from None
    return url


def _sms_recipients(session: Session, job: SmsJob, merchant: Merchant, sms_type: str, warnings: list[str]
                    ) -> list[tuple[str, Any]]:
    """(raw recipient, body or None) pairs from batch nodes, ``to`` or ``listId``, with the seed's rules."""
    if job.sms is not None:
        return _batch_nodes(job)
    if job.to not in (None, "", []):
        if job.list_id:
            warnings.append("both to and listId given: to is used, listId ignored")
        return [(to, None) for to in _capped(_split_to(job.to))]
    if job.list_id is None:
        raise ValidationError(Code.TO_REQUIRED, "to or listId has to be filled", field="to")
    if not job.list_id:
        raise ValidationError(Code.LIST_ID_REQUIRED, "listId has to be filled", field="listId")
    if sms_type == "OTP":
        raise Refusal(Code.LIST_SEND_NOT_OTP, "a list send cannot be OTP", field="type")
    if sms_type != "MKT":
        raise Refusal(Code.BULK_MUST_BE_MKT, "a list send must be MKT", field="type")
    return [(contact, None) for contact in _list_members(session, merchant, job.list_id)]


def _capped(recipients: list[str]) -> list[str]:
    """Refuse (E828) a ``to`` longer than HEXAVOX_MAX_RECIPIENTS before any recipient costs a database round trip."""
    cap = get_settings().max_recipients
    if len(recipients) > cap:
        raise Refusal(Code.TOO_MANY_RECIPIENTS, f"at most {cap} recipients in to; send larger audiences as a list",
                      field="to")
    return recipients


def _list_members(session: Session, merchant: Merchant, list_id: str) -> list[str]:
    contact_list = session.scalars(select(ContactList).where(ContactList.merchant_id == merchant.id,
                                                             ContactList.external_id == list_id)).first()
    if contact_list is None:
        raise Refusal(Code.LIST_NOT_FOUND, "no such list for this merchant", field="listId")
    return list(session.scalars(select(ContactListMember.contact).where(ContactListMember.list_id == contact_list.id)
                                .order_by(ContactListMember.id)))


def _batch_nodes(job: SmsJob) -> list[tuple[str, Any]]:
    nodes = job.sms or []
    if not nodes:
        raise ValidationError(Code.SMS_NODES_REQUIRED, "sms nodes are mandatory in the batch form", field="sms")
    if len(nodes) > MAX_SMS_NODES:
        raise ValidationError(Code.TOO_MANY_SMS_NODES, f"at most {MAX_SMS_NODES} sms nodes", field="sms")
    pairs = []
    for node in nodes:
        if node.to is None:
            raise ValidationError(Code.SMS_NODE_TO_REQUIRED, "to is mandatory in each sms node", field="sms.to")
        if not isinstance(node.to, str) or not node.to.strip():
            raise ValidationError(Code.SMS_NODE_TO_EMPTY, "to has to be filled in sms nodes", field="sms.to")
        if "," in node.to:
            raise ValidationError(Code.TO_CONTAINS_COMMAS, "to in an sms node cannot contain commas", field="sms.to")
        if node.body in (None, "") and job.body in (None, ""):
            raise ValidationError(Code.BODY_REQUIRED_IN_NODE_OR_GLOBAL, "body missing in node and globally",
                                  field="sms.body")
        pairs.append((node.to.strip(), node.body if node.body not in (None, "") else None))
    return pairs


def _check_counts(sms_type: str, count: int) -> None:
    if sms_type == "OTP" and count != 1:
        raise Refusal(Code.OTP_SINGLE_RECIPIENT, "OTP takes exactly one mobile number", field="to")
    if sms_type == "TXN" and count > MAX_TXN_RECIPIENTS:
        raise Refusal(Code.TXN_TOO_MANY_RECIPIENTS, f"TXN takes at most {MAX_TXN_RECIPIENTS} numbers", field="to")


def _text(value: Any, field_name: str, code: Code) -> str:
    if value is None or value == "":
        raise ValidationError(code, f"{field_name} cannot be left empty", field=field_name)
    if not isinstance(value, str):
        raise ValidationError(Code.INVALID_INPUT, f"{field_name} must be a string", field=field_name)
    return value


def sms_drafts(session: Session, job: SmsJob, merchant: Merchant, now: dt.datetime) -> Drafts:
    """Drafts for an SMS job in the README's Policy order: fields, schedule, recipients, counts, then each recipient."""
    sms_type = check_sms_type(job.type)
    sender = check_sender(job.sender)
    options = _sms_options(job)
    scheduled = parse_schedule(_optional_str(job.time, "time"), tz=merchant.timezone, now=now)
    warnings: list[str] = []
    pairs = _sms_recipients(session, job, merchant, sms_type, warnings)
    if not pairs:
        raise Refusal(Code.INVALID_MOBILE_NUMBER, "no recipients (empty list)", field="to")
    _check_counts(sms_type, len(pairs))
    global_body = None if job.sms is not None and job.body in (None, "") else _text(job.body, "body", Code.BODY_EMPTY)
    drafts = [_sms_draft(raw, node_body or global_body, sms_type, sender, options, merchant)
              for raw, node_body in pairs]
    return Drafts(drafts, scheduled, warnings)


def _sms_draft(raw: str, body: Any, sms_type: str, sender: str, options: dict[str, Any], merchant: Merchant) -> Draft:
    draft = _phone_draft(raw, merchant, Channel.SMS, message_type=sms_type, body="", sender=sender,
                         options=dict(options))
    try:
        text = _text(body, "body", Code.BODY_EMPTY)
        info = encode_info(text, options["unicode"])
    except ValidationError as err:
        draft.refusal = draft.refusal or err
        return draft
    draft.body, draft.units = text, info.segments
    draft.options.update(encoding=info.encoding, segments=info.segments)
    return draft


def _optional_str(value: Any, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(Code.INVALID_INPUT, f"{field_name} must be a string", field=field_name)
    return value


def voice_drafts(job: VoiceJob, merchant: Merchant) -> Drafts:
    """One call: text, ring timeout and record flag checked; minutes estimated from the text length."""
    call = check_voice(job.text, job.timeout_seconds, job.record)
    if not isinstance(job.to, str):
        raise ValidationError(Code.TO_REQUIRED, "to has to be one phone number", field="to")
    minutes = max(1, math.ceil(len(call.text) / TTS_CHARS_PER_MINUTE))
    options = {"record": call.record, "timeoutSeconds": call.timeout_seconds, "dlrUrl": _dlr_url(job.dlr_url)}
    if job.ring_agent and job.type in AGENT_TYPES:
        options["ringAgent"] = True
    draft = _phone_draft(job.to, merchant, Channel.VOICE, message_type=job.type, body=call.text,
                         units=minutes, options=options)
    return Drafts([draft])


def email_drafts(job: EmailJob) -> Drafts:
    """One email: address normalised, subject and body checked (no header injection)."""
    content = check_email_content(job.subject, job.body)
    options = {"dlrUrl": _dlr_url(job.dlr_url)}
    if not isinstance(job.to, str) or not job.to:
        raise ValidationError(Code.TO_REQUIRED, "to has to be one email address", field="to")
    kw: dict[str, Any] = dict(message_type=job.type, body=content.body, subject=content.subject, units=1,
                              options=options)
    try:
        return Drafts([Draft(channel=Channel.EMAIL, recipient=normalize_email(job.to), **kw)])
    except ValidationError as err:
        return Drafts([Draft(channel=Channel.EMAIL, recipient=job.to[:320], refusal=err, **kw)])
