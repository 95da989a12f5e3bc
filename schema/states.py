"""Closed sets of values stored in the database. Check constraints are built from these."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Channel", "SmsType", "EmailType", "MessageState", "Freshness", "ConsentStatus",
    "CampaignState", "CallbackState", "PaymentStatus", "RequestStatus", "TERMINAL_STATES",
]


class Channel(StrEnum):
    SMS = "SMS"
    VOICE = "VOICE"
    EMAIL = "EMAIL"


class SmsType(StrEnum):
    OTP = "OTP"  #: one-time password: one recipient, never marketing
    TXN = "TXN"  #: transactional: at most 100 recipients
    MKT = "MKT"  #: marketing: needs OPT_IN, the only type for lists and bulk


class EmailType(StrEnum):
    TRANSACTIONAL = "TRANSACTIONAL"
    MARKETING = "MARKETING"


class MessageState(StrEnum):
    QUEUED = "QUEUED"  #: accepted, waiting for dispatch
    SCHEDULED = "SCHEDULED"  #: accepted for a later time; a beat sweep queues it when due
    DISPATCHING = "DISPATCHING"  #: a worker claimed it and may be talking to the provider
    SENT = "SENT"  #: the provider accepted it
    AMBIGUOUS = "AMBIGUOUS"  #: the provider may or may not have it: reconcile decides
    DELIVERED = "DELIVERED"  #: final: delivered to the handset / mailbox / call answered
    FAILED = "FAILED"  #: final: refused by the provider or undeliverable
    EXPIRED = "EXPIRED"  #: final: no outcome within the maximum age
    REFUSED = "REFUSED"  #: final: refused by policy at intake, never sent, costs nothing


TERMINAL_STATES = frozenset({MessageState.DELIVERED, MessageState.FAILED, MessageState.EXPIRED, MessageState.REFUSED})


class Freshness(StrEnum):
    PROVISIONAL = "PROVISIONAL"  #: the outcome may still change
    FINAL = "FINAL"  #: settled: safe to bill


class ConsentStatus(StrEnum):
    OPT_IN = "OPT_IN"
    OPT_OUT = "OPT_OUT"


class CampaignState(StrEnum):
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"


class CallbackState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"


class RequestStatus(StrEnum):
    ACCEPTED = "ACCEPTED"  #: every recipient accepted
    PARTIAL = "PARTIAL"  #: some recipients accepted, some refused
    REFUSED = "REFUSED"  #: nothing accepted


class BillingPeriod(StrEnum):
    """How long a merchant's limits last before usage starts again from 0 (anchored in its time zone)."""

    WEEKLY = "WEEKLY"  #: from the merchant's billing weekday (1 = Monday)
    MONTHLY = "MONTHLY"  #: from its billing day of each month (the default: day 1)
    QUARTERLY = "QUARTERLY"  #: from its billing day of January, April, July and October
    YEARLY = "YEARLY"  #: from its billing day of January
