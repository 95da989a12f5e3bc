"""The provider protocol: three operations and the closed result types they return.

A driver sends one message, looks up the status of one message, and parses one delivery
callback. It never returns a bool: the four send outcomes tell dispatch exactly what it may
do next (record, fail, fail over, or hand to reconcile), following Jepsen's ok/fail/info.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from schema.states import Channel
from worker.catalogue import Code

__all__ = [
    "OutboundMessage", "SendOutcome", "SendResult", "DeliveryStatus", "StatusResult", "DeliveryEvent",
    "ProviderRef", "Provider", "MAX_CALL_SECONDS",
]


@dataclass(frozen=True)
class OutboundMessage:
    """What a driver needs to send one message. ``message_id`` is our reference: drivers pass it to the
    provider as its idempotency key / client reference so reconcile can find the message without a
    provider reference."""

    message_id: str
    channel: Channel
    message_type: str
    recipient: str
    body: str
    sender: str = ""
    subject: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


class SendOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"  #: the provider took it; ``provider_ref`` identifies it there
    REJECTED = "REJECTED"  #: final refusal (bad number, blocked content): never retry
    UNAVAILABLE = "UNAVAILABLE"  #: nothing left our side (connect refused, throttled): retry or fail over
    AMBIGUOUS = "AMBIGUOUS"  #: it may have left (timeout after the request was written, 5xx): reconcile


@dataclass(frozen=True)
class SendResult:
    """The closed outcome of one send call, with the provider's own code and raw answer kept."""

    outcome: SendOutcome
    provider: str
    provider_ref: str | None = None
    provider_code: str | None = None
    #: For REJECTED: the catalogue code the provider code maps to.
    error_code: Code | None = None
    detail: str = ""
    raw: Any = None
    #: For ACCEPTED: the acceptance is the last word this provider will ever give (an SMTP relay's 250 hands the
    #: message over and offers no lookup), so the message is settled DELIVERED at once instead of waiting for a
    #: report that cannot come and expiring unbilled.
    final: bool = False
    #: For UNAVAILABLE: only our own throughput limit stood in the way (no sign of trouble at the provider), so the
    #: message waits for a slot however long that takes, instead of counting towards giving up.
    throttled: bool = False
    #: For ACCEPTED: the provider's price for this message in micro-dollars, when its answer states one; the
    #: message's cost then comes from here instead of the configured price table.
    cost_micros: int | None = None

    @classmethod
    def accepted(cls, provider: str, provider_ref: str, *, raw: Any = None, provider_code: str | None = None,
                 final: bool = False, cost_micros: int | None = None) -> SendResult:
        return cls(SendOutcome.ACCEPTED, provider, provider_ref=provider_ref, provider_code=provider_code, raw=raw,
                   final=final, cost_micros=cost_micros)

    @classmethod
    def rejected(cls, provider: str, provider_code: str | None, detail: str, *, raw: Any = None,
                 error_code: Code = Code.PROVIDER_REJECTED) -> SendResult:
        return cls(SendOutcome.REJECTED, provider, provider_code=provider_code, error_code=error_code,
                   detail=detail, raw=raw)

    @classmethod
    def unavailable(cls, provider: str, detail: str, *, raw: Any = None, throttled: bool = False) -> SendResult:
        return cls(SendOutcome.UNAVAILABLE, provider, detail=detail, raw=raw, throttled=throttled)

    @classmethod
    def ambiguous(cls, provider: str, detail: str, *, raw: Any = None) -> SendResult:
        return cls(SendOutcome.AMBIGUOUS, provider, detail=detail, raw=raw)


#: Longer than any call a provider completes: a report with a larger duration is unreadable, not a bill.
MAX_CALL_SECONDS = 24 * 3600


class DeliveryStatus(StrEnum):
    """A provider's view of one message, normalised."""

    ACCEPTED = "ACCEPTED"  #: received, not yet delivered (queued/sent at the provider)
    DELIVERED = "DELIVERED"  #: final: reached the handset / mailbox / call completed
    FAILED = "FAILED"  #: final: undeliverable or rejected
    NOT_FOUND = "NOT_FOUND"  #: the provider proves it never received the message: safe to resend
    UNKNOWN = "UNKNOWN"  #: the provider's answer did not settle it (unmapped code, lookup failed)


@dataclass(frozen=True)
class ProviderRef:
    """How to look a message up: by the provider's reference when we have it, else by our own id."""

    message_id: str
    provider_ref: str | None = None


@dataclass(frozen=True)
class StatusResult:
    status: DeliveryStatus
    provider_ref: str | None = None
    provider_code: str | None = None
    #: Voice: billed call duration in seconds, when the provider reports it.
    duration_seconds: int | None = None
    raw: Any = None


@dataclass(frozen=True)
class DeliveryEvent:
    """One normalised delivery report or inbound reply from a provider webhook; ``raw`` is the payload as received."""

    provider: str
    status: DeliveryStatus
    provider_ref: str | None = None
    message_id: str | None = None
    event_id: str | None = None
    occurred_at: dt.datetime | None = None
    provider_code: str | None = None
    duration_seconds: int | None = None
    #: For inbound replies (e.g. STOP): the sender's number and the text; ``status`` is UNKNOWN then.
    reply_from: str | None = None
    reply_text: str | None = None
    #: For inbound replies: our number the reply was sent to (scopes a STOP to the merchants sending from it).
    reply_to: str | None = None
    raw: Any = None


@runtime_checkable
class Provider(Protocol):
    """What every driver implements. ``name`` is the configured instance name (e.g. "simulated", "hexa-sms")."""

    name: str
    channels: frozenset[Channel]
    #: Messages per second this provider accepts from us across all workers; 0 means unlimited.
    max_rps: float

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one message. Must never raise for provider or network trouble: return the outcome."""
        ...

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        """Ask the provider what became of one message."""
        ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """Turn one webhook request into events. Raises ``ValidationError`` when the signature is wrong."""
        ...
