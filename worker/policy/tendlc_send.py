"""The 10DLC send rule: a US SMS from a merchant's 10DLC number goes out only from a number ASSIGNED to an ACTIVE
campaign whose use case covers the message type.

Checked at intake (refused with E892/E893, free, like any refusal) and again at dispatch, because a campaign may be
suspended while messages wait in the queue. What counts as a 10DLC sender: a US/Canadian long code (not toll-free,
not a short code, not an alphanumeric sender id) registered as a messaging number of the merchant; a merchant with a
10DLC brand may send US SMS from its registered numbers only. Merchants without a brand or numbers, other
countries, toll-free numbers, short codes and alphanumeric senders are unaffected. The cheap string checks come
first, so an SMS the rule cannot concern costs no parse and no query.
"""

from __future__ import annotations

from collections.abc import Sequence

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType
from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.messaging_states import USE_CASE_COVERS, AssignmentStatus, RegistrationStatus, UseCase
from schema.models import MessagingBrand, MessagingCampaign, MessagingNumber
from schema.states import MessageState
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.claims import Claim

__all__ = ["is_us_destination", "long_code", "refuse_unregistered_10dlc", "require_10dlc", "tendlc_refusal"]

_LONG_CODE_REGIONS = frozenset({"US", "CA"})


def long_code(sender: str | None) -> str | None:
    """``sender`` as E.164 when it is a US/Canadian long code (10 digits after +1, not toll-free), else None."""
    if not sender:
        return None
    digits = sender[1:] if sender.startswith("+") else sender
    if not digits.isdigit() or len(digits) not in (10, 11):
        return None
    if len(digits) == 10:
        digits = "1" + digits
    if not digits.startswith("1"):
        return None
    try:
        parsed = phonenumbers.parse("+" + digits)
    except NumberParseException:
        return None
    if phonenumbers.region_code_for_number(parsed) not in _LONG_CODE_REGIONS:
        return None
    if phonenumbers.number_type(parsed) == PhoneNumberType.TOLL_FREE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_us_destination(recipient: str) -> bool:
    """True for a US number (E.164; +1 numbers of Canada and the Caribbean are not US destinations)."""
    if not recipient.startswith("+1"):
        return False
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(recipient)) == "US"
    except NumberParseException:
        return False


def tendlc_refusal(session: Session, merchant_id: int, sender: str | None, recipient: str,
                   message_type: str) -> Refusal | None:
    """Why this SMS may not go out under the 10DLC rule, or None when it may (or the rule does not concern it)."""
    if not sender or not recipient.startswith("+1") or not sender.lstrip("+").isdigit():
        return None
    number = long_code(sender)
    if number is None or not is_us_destination(recipient):
        return None
    row = session.execute(select(MessagingNumber.assignment, MessagingCampaign.status, MessagingCampaign.use_case)
                          .outerjoin(MessagingCampaign, MessagingCampaign.id == MessagingNumber.campaign_pk)
                          .where(MessagingNumber.merchant_id == merchant_id, MessagingNumber.number == number)).first()
    if row is None:
        if session.scalar(select(MessagingBrand.id).where(MessagingBrand.merchant_id == merchant_id)) is None:
            return None  # not a 10DLC merchant: its long codes are its own business (toll-free, other routes)
        return Refusal(Code.TENDLC_NOT_REGISTERED, "the sender is not a messaging number of this merchant",
                       field="sender")
    assignment, status, use_case = row
    if assignment != AssignmentStatus.ASSIGNED.value or status != RegistrationStatus.ACTIVE.value:
        return Refusal(Code.TENDLC_NOT_REGISTERED, f"the sender's 10DLC campaign is {status or 'not assigned'}"
                       if assignment == AssignmentStatus.ASSIGNED.value else
                       f"the sender's assignment is {assignment or 'missing'}", field="sender")
    if message_type not in USE_CASE_COVERS[UseCase(use_case)]:
        return Refusal(Code.TENDLC_USE_CASE_MISMATCH, f"a {use_case} campaign does not carry {message_type} SMS",
                       field="type")
    return None


def require_10dlc(session: Session, merchant_id: int, sender: str | None, recipient: str, message_type: str) -> None:
    """Intake's form of :func:`tendlc_refusal`: raise the refusal."""
    refusal = tendlc_refusal(session, merchant_id, sender, recipient, message_type)
    if refusal is not None:
        raise refusal


def refuse_unregistered_10dlc(claims: Sequence[Claim]) -> set[str]:
    """Dispatch's re-check: fail (units returned) the claimed messages the 10DLC rule now refuses; their ids.

    Only SMS the rule may concern (a numeric sender, a +1 recipient) cost a query, in one transaction for all.
    """
    from worker.policy.dispatch import _fail

    candidates = [c for c in claims if c.message.channel.value == "SMS" and c.message.recipient.startswith("+1")
                  and (c.message.sender or "").lstrip("+").isdigit()]
    if not candidates:
        return set()
    refused: set[str] = set()
    with session_scope() as session:
        for claim in candidates:
            m = claim.message
            refusal = tendlc_refusal(session, claim.merchant_id, m.sender, m.recipient, m.message_type)
            if refusal is not None:
                _fail(session, m.message_id, refusal.code, [MessageState.DISPATCHING], detail=refusal.detail)
                refused.add(m.message_id)
    return refused
