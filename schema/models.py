"""SQLAlchemy 2 models for everything the service keeps.

Rules that must hold under concurrency live in the database, not only in Python: unique
keys collapse idempotent retries and duplicate sends, check constraints keep states and
balances in range, foreign keys keep tenants apart. The same models run on PostgreSQL
(production) and SQLite (embedded); migrations in ``schema/migrations`` create them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from schema.messaging_states import (
    AssignmentStatus,
    BrandStatus,
    NumberSource,
    RegistrationStatus,
    SipPresence,
    SipTransport,
    UseCase,
)
from schema.states import (
    TERMINAL_STATES,
    BillingPeriod,
    CallbackState,
    CampaignState,
    Channel,
    ConsentStatus,
    Freshness,
    MessageState,
    PaymentStatus,
    RequestStatus,
)

__all__ = [
    "Base", "Tenant", "ApiKey", "Merchant", "Balance", "Route", "Consent", "ContactList", "ContactListMember",
    "Campaign", "Request", "Message", "MessageEvent", "DuplicateGuard", "TaskRedelivery", "OutboundCallback", "Alert",
    "BillingUpgrade", "InboundEvent", "UsagePeriod",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)


def _in(column: str, values: Iterable[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


#: Every message type a job may carry: SMS and voice types, and email's two.
MESSAGE_TYPES = ("OTP", "TXN", "MKT", "REMINDER", "TRANSACTIONAL", "MARKETING")
#: The terminal states in declaration order, so the generated DDL is stable.
_TERMINAL = [state for state in MessageState if state in TERMINAL_STATES]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType}


class Tenant(Base):
    """An account that owns merchants and API keys."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class ApiKey(Base):
    """A tenant credential. The secret is stored as a SHA-256 digest: secrets are 256-bit random tokens we issue,
    so a slow password hash adds cost on every job without adding safety."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    #: Rules (seed 004): which channels and job kinds this key may use. ["*"] allows all.
    allowed_channels: Mapped[list[Any]] = mapped_column(default=lambda: ["*"])
    allowed_jobs: Mapped[list[Any]] = mapped_column(default=lambda: ["*"])
    #: The merchants (merchantId) this key may act for; ["*"] is every merchant of the tenant.
    allowed_merchants: Mapped[list[Any]] = mapped_column(default=lambda: ["*"], server_default='["*"]')
    #: Networks (CIDR) the HTTP API accepts this key from; empty is anywhere.
    allowed_cidrs: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    #: HTTP requests per minute for this key; None takes the settings' default.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: A rotated key keeps working until then (the grace period), then is refused like a revoked one.
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class Merchant(Base):
    """A business sending through a tenant. ``external_id`` is the ``merchantId`` of the contract."""

    __tablename__ = "merchants"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        CheckConstraint(_in("billing_period", BillingPeriod), name="billing_period"),
        CheckConstraint("billing_day BETWEEN 1 AND 28", name="billing_day"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Signing secret for dlrUrl callbacks (Standard Webhooks), one per merchant; a list allows rotation.
    webhook_secrets: Mapped[list[Any]] = mapped_column(default=list)
    #: ISO country codes this merchant may send to; empty means no restriction.
    allowed_countries: Mapped[list[Any]] = mapped_column(default=list)
    #: How long limits last (:class:`BillingPeriod`) and the day a period starts: day of the month (1-28), or the
    #: ISO weekday (1-7) for WEEKLY. Periods start at midnight in ``timezone``.
    billing_period: Mapped[str] = mapped_column(String(10), default=BillingPeriod.MONTHLY.value,
                                                server_default=BillingPeriod.MONTHLY.value)
    billing_day: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now(), onupdate=func.now())


class Balance(Base):
    """Limit, purchased credits and usage of one merchant on one channel for the current period.

    When a period ends the row is copied to :class:`UsagePeriod` and starts again from 0 (worker/policy/periods.py).

    Units are reserved with one conditional UPDATE (``used + n <= limit + credits``), which
    PostgreSQL re-checks on the newest row version under concurrency: it cannot overspend.
    """

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint("unit_limit >= 0 AND credits >= 0", name="limit_credits_not_negative"),
        CheckConstraint("used <= unit_limit + credits", name="never_overspent"),
        CheckConstraint(_in("channel", Channel), name="channel"),
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    unit_limit: Mapped[int] = mapped_column(BigInteger, default=0)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[dt.date] = mapped_column(Date)


class UsagePeriod(Base):
    """A closed billing period of one merchant and channel: its limit, the credits it could draw on and what it used.

    Written once when the balance rolls over; later refunds of messages charged to it (a message accepted just
    before the boundary that failed after it) are taken off here, and give back the credits they had drawn.
    """

    __tablename__ = "usage_periods"
    __table_args__ = (
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint(_in("channel", Channel), name="channel"),
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    period_end: Mapped[dt.date] = mapped_column(Date)
    unit_limit: Mapped[int] = mapped_column(BigInteger)
    #: Credits the period could draw on (those it did not use carried over to the next one).
    credits: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[int] = mapped_column(BigInteger)


class Route(Base):
    """Ordered providers for a merchant's channel and type; ``merchant_id`` NULL is the tenant-wide default."""

    __tablename__ = "routes"
    __table_args__ = (
        UniqueConstraint("merchant_id", "channel", "message_type"),
        CheckConstraint(_in("channel", Channel), name="channel"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    message_type: Mapped[str] = mapped_column(String(16))
    providers: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("merchant_id", "channel", "contact"),
        CheckConstraint(_in("status", ConsentStatus), name="status"),
        CheckConstraint(_in("channel", Channel), name="channel"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    #: E.164 phone number or normalised email address.
    contact: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now(), onupdate=func.now())


class ContactList(Base):
    __tablename__ = "contact_lists"
    __table_args__ = (UniqueConstraint("merchant_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(10), default="api")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class ContactListMember(Base):
    __tablename__ = "contact_list_members"
    __table_args__ = (UniqueConstraint("list_id", "contact"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("contact_lists.id", ondelete="CASCADE"))
    contact: Mapped[str] = mapped_column(String(320))


class Campaign(Base):
    """A list, scheduled or multi-recipient marketing send, kept as one row and fanned out later in chunks.

    Its id for callers is ``request_id`` (the request that holds its messages). Beat claims due rows with a
    conditional UPDATE, so exactly one beat fires it; a chunk claims the range at ``cursor`` (moving it) and notes
    it in ``payload["inflight"]`` until the transaction that writes its messages takes it off, so a range is
    written once whatever crashes.
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("state", CampaignState), name="state"),
        CheckConstraint("processed >= 0 AND processed <= total AND refused <= processed", name="progress"),
        Index("ix_campaigns_due", "state", "scheduled_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), unique=True)
    #: The contact list sent to, or None when the recipients are inline (``payload["recipients"]``).
    list_id: Mapped[int | None] = mapped_column(ForeignKey("contact_lists.id"))
    name: Mapped[str] = mapped_column(String(32), default="")
    channel: Mapped[str] = mapped_column(String(8), default="SMS", server_default="SMS")
    message_type: Mapped[str] = mapped_column(String(16), default="MKT", server_default="MKT")
    state: Mapped[str] = mapped_column(String(10), default=CampaignState.SCHEDULED.value)
    scheduled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    #: The validated message template (body, sender, options, units) and inline recipients.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Recipients planned (fixed at intake: list members up to ``last_member_id``, or the inline ones).
    total: Mapped[int] = mapped_column(Integer, default=0)
    #: Messages written QUEUED so far.
    queued: Mapped[int] = mapped_column(Integer, default=0)
    #: Recipients expanded so far (queued + refused): ``total - processed`` are still waiting.
    processed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refused: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Last list member id claimed by a chunk (list) or recipients claimed (inline); the next range starts after it.
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The list's newest member id at intake: members added later are not part of this campaign.
    last_member_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: When a chunk last moved the cursor: a RUNNING campaign quiet for long had its chunk task lost.
    progressed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


_TENANT_WIDE_KEY = text("merchant_id IS NULL AND idempotency_key IS NOT NULL")


class Request(Base):
    """One intake job. Its id is the request id handed back at once.

    An Idempotency-Key is unique per merchant for sends, and per tenant for admin jobs (which may create the merchant
    they name, so it cannot scope them).
    """

    __tablename__ = "requests"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("uq_requests_tenant_idempotency", "tenant_id", "idempotency_key", unique=True,
              postgresql_where=_TENANT_WIDE_KEY, sqlite_where=_TENANT_WIDE_KEY),
        CheckConstraint(_in("status", RequestStatus), name="status"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))
    #: The answer given to the sender: per recipient message id and status or refusal code.
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class Message(Base):
    """One recipient, one channel, one body: the unit that is charged, dispatched and settled."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("status", MessageState), name="status"),
        CheckConstraint(_in("freshness", Freshness), name="freshness"),
        CheckConstraint(_in("channel", Channel), name="channel"),
        CheckConstraint("units >= 0", name="units_not_negative"),
        CheckConstraint("status <> 'REFUSED' OR (units = 0 AND error_code IS NOT NULL)", name="refused_is_free"),
        CheckConstraint(f"message_type IN ({', '.join(repr(t) for t in MESSAGE_TYPES)})", name="message_type"),
        CheckConstraint(f"({_in('status', _TERMINAL)}) = (freshness = 'FINAL')", name="final_iff_terminal"),
        Index("ix_messages_status_updated", "status", "updated_at"),
        Index("ix_messages_merchant_created", "merchant_id", "created_at"),
        Index("ix_messages_provider_ref", "provider", "provider_ref"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    message_type: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(String(998), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    #: Channel options: unicode, flash, ref, record, timeoutSeconds, dlrUrl, campaign name.
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: SMS segments, voice minutes (estimated, then real) or 1 per email.
    units: Mapped[int] = mapped_column(Integer, default=0)
    #: What the message costs us, in micro-dollars: the provider's price from its answer when it gave one
    #: (``provider_priced``), else units x the configured price of the channel (HEXAVOX_UNIT_PRICES).
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    provider_priced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The billing period its units were charged to (NULL for messages older than billing periods).
    period_start: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))
    freshness: Mapped[str] = mapped_column(String(12), default=Freshness.PROVISIONAL.value)
    error_code: Mapped[str | None] = mapped_column(String(8))
    error_detail: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str | None] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    #: Times a dispatch task for this message was delivered by the broker; capped (poison loops).
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reconcile_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Reconcile asks again no sooner than this: the wait doubles with every answer that settled nothing.
    reconcile_after: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    final_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class MessageEvent(Base):
    """State history of a message: every transition with its time and why."""

    __tablename__ = "message_events"
    __table_args__ = (
        CheckConstraint(_in("to_state", MessageState), name="to_state"),
        CheckConstraint(f"from_state IS NULL OR {_in('from_state', MessageState)}", name="from_state"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TaskRedelivery(Base):
    """How often the broker redelivered one job: Redis has no delivery limit, so a job that kills its worker
    every time would loop forever. Only redelivered jobs get a row; it is deleted once the job completes."""

    __tablename__ = "task_redeliveries"
    task_id: Mapped[str] = mapped_column(String(155), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(80))
    redeliveries: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class InboundEvent(Base):
    """A provider event already applied, by (provider, event id): a replayed or redelivered webhook inside the
    signature's time window finds its events here and changes nothing (worker/policy/delivery_reports.py)."""

    __tablename__ = "inbound_events"
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now(), index=True)


class DuplicateGuard(Base):
    """The 10-second duplicate window: one row per (merchant, channel, recipient, content) digest.

    A send claims the row with one upsert that only succeeds when the previous window has
    expired by database time, in the same transaction as the message insert and charge.
    """

    __tablename__ = "duplicate_guard"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(36))


class OutboundCallback(Base):
    """A signed delivery-report callback to a merchant's dlrUrl, retried with backoff until delivered or given up."""

    __tablename__ = "outbound_callbacks"
    __table_args__ = (
        CheckConstraint(_in("state", CallbackState), name="state"),
        CheckConstraint(_in("event_status", _TERMINAL), name="event_status"),
        UniqueConstraint("message_id", "event_status"),
        Index("ix_outbound_callbacks_due", "state", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    event_status: Mapped[str] = mapped_column(String(12))
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default=CallbackState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class Alert(Base):
    """Usage thresholds, provider circuits opening, reconcile backlog; ``dedupe_key`` keeps one per event."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


class BillingUpgrade(Base):
    """Purchased units: credited once when the payment is confirmed; idempotent by (merchant, referenceId)."""

    __tablename__ = "billing_upgrades"
    __table_args__ = (
        UniqueConstraint("merchant_id", "reference_id"),
        CheckConstraint(_in("payment_status", PaymentStatus), name="payment_status"),
        CheckConstraint(_in("channel", Channel), name="channel"),
        CheckConstraint("units > 0 AND amount_cents >= 0", name="positive"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    units: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reference_id: Mapped[str] = mapped_column(String(100))
    payment_method_id: Mapped[str] = mapped_column(String(100), default="")
    payment_id: Mapped[str] = mapped_column(String(100))
    payment_status: Mapped[str] = mapped_column(String(10), default=PaymentStatus.PENDING.value)
    fulfilled: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(String(500), default="")
    payload_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())


# 10DLC messaging registration and SIP voice provisioning (worker/policy/tendlc.py, worker/policy/sip.py).
__all__ += ["MessagingBrand", "MessagingCampaign", "MessagingNumber", "SipCredential"]


class MessagingBrand(Base):
    """A merchant's 10DLC brand (one per merchant: the registry knows a business by its tax id).

    ``registrar_ref`` is the registrar's id once submitted; until then the poll submits it (reconcile-first: a
    submission whose answer was lost is looked up by our ``brand_id`` before anything is sent again).
    """

    __tablename__ = "messaging_brands"
    __table_args__ = (CheckConstraint(_in("status", BrandStatus), name="status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), unique=True)
    brand_id: Mapped[str] = mapped_column(String(36), unique=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(2))
    vertical: Mapped[str] = mapped_column(String(40))
    #: Street, city, state, postal code; and the contact (name, email, phone). Never logged.
    address: Mapped[dict[str, Any]] = mapped_column(default=dict)
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12), default=BrandStatus.PENDING.value)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    registrar: Mapped[str] = mapped_column(String(40))
    registrar_ref: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now(), onupdate=func.now())


class MessagingCampaign(Base):
    """A 10DLC campaign of a brand: its use case fixes which SMS types its numbers may send."""

    __tablename__ = "messaging_campaigns"
    __table_args__ = (CheckConstraint(_in("status", RegistrationStatus), name="status"),
                      CheckConstraint(_in("use_case", UseCase), name="use_case"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    brand_pk: Mapped[int] = mapped_column(ForeignKey("messaging_brands.id", ondelete="CASCADE"))
    campaign_id: Mapped[str] = mapped_column(String(36), unique=True)
    use_case: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(String(1000))
    sample_messages: Mapped[list[Any]] = mapped_column(default=list)
    opt_in: Mapped[str] = mapped_column(String(1000))
    opt_out: Mapped[str] = mapped_column(String(1000))
    help_text: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(12), default=RegistrationStatus.PENDING.value)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    registrar_ref: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now(), onupdate=func.now())


class MessagingNumber(Base):
    """A long code a merchant sends from, bought or brought, and its assignment to a campaign.

    A number belongs to one merchant (unique); ``assignment`` is None until it is assigned to a campaign.
    """

    __tablename__ = "messaging_numbers"
    __table_args__ = (CheckConstraint(_in("source", NumberSource), name="source"),
                      CheckConstraint(f"assignment IS NULL OR {_in('assignment', AssignmentStatus)}",
                                      name="assignment"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    source: Mapped[str] = mapped_column(String(4))
    campaign_pk: Mapped[int | None] = mapped_column(ForeignKey("messaging_campaigns.id", ondelete="SET NULL"))
    assignment: Mapped[str | None] = mapped_column(String(10))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    registrar_ref: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now(), onupdate=func.now())


class SipCredential(Base):
    """An agent's SIP login for a merchant, and the agent's presence.

    The secret is never stored: only a random salt (the secret is derived from it with the service key, so the
    HTTP door can show it once, on creation) and its SHA-256 digest, which a SIP registrar checks against.
    """

    __tablename__ = "sip_credentials"
    __table_args__ = (CheckConstraint(_in("presence", SipPresence), name="presence"),
                      CheckConstraint(_in("transport", SipTransport), name="transport"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    domain: Mapped[str] = mapped_column(String(200))
    transport: Mapped[str] = mapped_column(String(4))
    secret_salt: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    presence: Mapped[str] = mapped_column(String(10), default=SipPresence.OFFLINE.value)
    presence_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, server_default=func.now())
