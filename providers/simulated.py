"""The simulated provider: a real driver whose behaviour is set by rates and a seed, with a ledger of every call.

Reliability tests and benchmarks need a provider that can be made slow, unavailable, refusing or *ambiguous* (it
took the message but the answer was lost) on demand, and that can say afterwards exactly how many times each
message reached it (docs/reliability.md section 1). That proof is the ledger: every call is committed in its own short
transaction *before* the driver answers, so a worker killed right after the call still leaves the evidence.

Determinism: each decision is a pure function of its inputs hashed with SHA-256, never a shared RNG, so concurrent
workers get the same outcomes whatever order they call in. Per attempt (seed, message_id, attempt): unavailability
and answer loss, because those are transport accidents that a later attempt may not meet. Per message
(seed, message_id): rejection and the delivery report, because a refusal is final (an invalid number stays invalid)
and the report describes the handset, not the call. ``attempt`` is the number of earlier calls for the message in
the ledger plus one; two *concurrent* sends of one message may share an attempt number.

Idempotent resend: like providers that honour an idempotency key, a message already ACCEPTED is accepted again
with the SAME ``provider_ref`` (refs are derived from the message id). The call is still written to the ledger,
flagged ``replay``, so a test sees two calls for one accepted message: a non-idempotent real provider would have
sent it twice.

Options (``HEXAVOX_SIMULATOR_<NAME>`` environment variables, overridden by the instance's options in
``HEXAVOX_PROVIDERS``): see :class:`SimulatorConfig`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    case,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from providers.base import (
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.http_common import signed_webhook_headers, verify_signature
from schema.states import Channel
from worker import db
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import Settings

__all__ = [
    "SimulatedProvider", "SimulatorConfig", "PROVIDER_CODES", "LEDGER", "SIGNATURE_HEADER",
    "ledger_calls", "ledger_counts", "pending_reports", "report_payload", "sign_callback",
]

log = logging.getLogger(__name__)

#: The simulator's refusal codes and the catalogue codes they mean. The only place provider codes are translated.
PROVIDER_CODES: dict[str, Code] = {
    "SIM-21": Code.INVALID_MOBILE_NUMBER,  # SMS / voice: the number does not exist
    "SIM-23": Code.INVALID_EMAIL,  # email: the mailbox does not exist
    "SIM-30": Code.PROVIDER_REJECTED,  # content blocked
}
_REJECT_CODES: dict[Channel, tuple[str, ...]] = {
    Channel.SMS: ("SIM-21", "SIM-30"),
    Channel.VOICE: ("SIM-21", "SIM-30"),
    Channel.EMAIL: ("SIM-23", "SIM-30"),
}
#: Provider code of a negative delivery report (handset unreachable, mailbox bounced, call not answered).
DLR_FAILURE_CODE = "SIM-40"

#: Callback status words and what they mean; anything else is UNKNOWN (never a guessed success).
_CALLBACK_STATUS: dict[str, DeliveryStatus] = {
    "ACCEPTED": DeliveryStatus.ACCEPTED,
    "SENT": DeliveryStatus.ACCEPTED,
    "DELIVERED": DeliveryStatus.DELIVERED,
    "FAILED": DeliveryStatus.FAILED,
    "UNDELIVERED": DeliveryStatus.FAILED,
}
SIGNATURE_HEADER = "x-simulator-signature"

ACCEPTED, REJECTED, UNAVAILABLE, LOST = "accepted", "rejected", "unavailable", "lost"

# The ledger is test equipment, not part of the production schema: its own MetaData, created on first use.
_metadata = MetaData()
LEDGER = Table(
    "simulator_ledger",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("message_id", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("channel", String(8), nullable=False),
    #: accepted | rejected: the call reached the provider. unavailable: it did NOT (connection refused).
    #: lost: it did NOT either (lost on the way), but the caller only saw a timeout.
    Column("outcome", String(16), nullable=False),
    #: True when the message had already been accepted: an idempotent resend answered with the first ref.
    Column("replay", Boolean, nullable=False, default=False),
    Column("provider_ref", String(64)),
    Column("provider_code", String(16)),
    Column("created_at", BigInteger, nullable=False),  # ms since the epoch
    Column("dlr_status", String(16)),  # DELIVERED | FAILED, decided at send time
    Column("dlr_due_at_ms", BigInteger),
    Index("ix_simulator_ledger_message", "provider", "message_id"),
    Index("ix_simulator_ledger_ref", "provider_ref"),
)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator behaves. Rates are probabilities in 0..1; times are milliseconds."""

    ledger_url: str
    latency_ms: float = 0.0  #: sleep after the ledger write, before answering
    #: How long the caller waits for the answer (default: HEXAVOX_PROVIDER_TIMEOUT). A latency above it is a
    #: timeout after the request arrived: the call is in the ledger and the answer never comes (AMBIGUOUS).
    timeout_ms: float = 0.0
    reject_rate: float = 0.0
    unavailable_rate: float = 0.0
    ambiguous_rate: float = 0.0  #: the call is recorded as received, then the answer is lost
    #: The request is lost on the way: the provider never gets it, the caller sees a timeout (AMBIGUOUS). Reconcile
    #: then finds NOT_FOUND, and only this proves a resend safe.
    lost_rate: float = 0.0
    dlr_delay_ms: float = 0.0  #: time from acceptance until the delivery report is final
    dlr_failure_rate: float = 0.0
    seed: int = 0
    max_rps: float = 0.0  #: 0 means unlimited
    callback_secret: str = ""  #: when set, callbacks must be signed (sign_callback: id, time and body)
    #: When above 0, an acceptance states the provider's price (micro-dollars per SMS segment, else per message),
    #: as priced APIs do; 0 states none, so the configured price table prices the message.
    price_micros: int = 0

    def __post_init__(self) -> None:
        for name in ("reject_rate", "unavailable_rate", "ambiguous_rate", "lost_rate", "dlr_failure_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigurationError(f"simulator {name} must be between 0 and 1, got {getattr(self, name)!r}")
        for name in ("latency_ms", "timeout_ms", "dlr_delay_ms", "max_rps", "price_micros"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"simulator {name} must not be negative, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], default_ledger_url: str) -> SimulatorConfig:
        """Build from strings (environment) or JSON values; unknown keys are refused so typos fail at start-up."""
        fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigurationError(f"unknown simulator option(s) {unknown}; known: {sorted(fields)}")
        kwargs = {key: _convert(key, value, fields[key]) for key, value in values.items()}
        kwargs.setdefault("ledger_url", default_ledger_url)
        return cls(**kwargs)


def _convert(key: str, value: object, type_name: str) -> Any:
    converter = {"float": float, "int": int}.get(type_name, str)
    try:
        return converter(value)
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"simulator option {key} must be {type_name}, got {value!r}") from err


class SimulatedProvider:
    """A provider for every channel whose outcomes come from :class:`SimulatorConfig`; see the module docstring."""

    channels: frozenset[Channel] = frozenset(Channel)

    def __init__(self, name: str, config: SimulatorConfig) -> None:
        self.name = name
        self.config = config
        self.max_rps = config.max_rps

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], settings: Settings) -> Self:
        """Options from HEXAVOX_PROVIDERS win over HEXAVOX_SIMULATOR_* settings; the ledger defaults to the database."""
        merged: dict[str, object] = {"timeout_ms": settings.provider_timeout * 1000, **settings.simulator, **options}
        return cls(name, SimulatorConfig.from_mapping(merged, settings.database_url))

    def __repr__(self) -> str:
        return f"SimulatedProvider({self.name!r}, seed={self.config.seed})"

    # -- send -------------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Decide, record in the ledger (committed), wait the latency, then answer or lose the answer."""
        try:
            calls, accepted_before = _history(_ledger_engine(self.config.ledger_url), self.name, message.message_id)
        except SQLAlchemyError as err:
            log.warning("simulator %s: ledger unreadable: %s", self.name, err)
            return SendResult.unavailable(self.name, f"simulated provider store unavailable: {err}")
        attempt = calls + 1
        if self._draw("unavailable", message.message_id, attempt) < self.config.unavailable_rate:
            return self._refuse_connection(message, attempt)
        if self._draw("lost", message.message_id, attempt) < self.config.lost_rate:
            return self._lose_request(message, attempt)
        row = self._decide(message, attempt, replay=accepted_before)
        try:
            _record(self.config.ledger_url, row)
        except SQLAlchemyError as err:  # the commit may have happened: only reconcile can tell
            return SendResult.ambiguous(self.name, f"simulated provider store failed mid-call: {err}")
        if self.config.timeout_ms and self.config.latency_ms > self.config.timeout_ms:
            time.sleep(self.config.timeout_ms / 1000)
            return SendResult.ambiguous(self.name, f"simulated: no answer within {self.config.timeout_ms:.0f} ms, "
                                        "the request arrived", raw=_public(row))
        time.sleep(self.config.latency_ms / 1000)
        if self._draw("ambiguous", message.message_id, attempt) < self.config.ambiguous_rate:
            return SendResult.ambiguous(self.name, "simulated: request received, answer lost", raw=_public(row))
        return self._priced(self._answer(row), message)

    def _priced(self, result: SendResult, message: OutboundMessage) -> SendResult:
        """An acceptance with the configured price stated, like a provider whose answer carries its price."""
        if result.outcome is not SendOutcome.ACCEPTED or not self.config.price_micros:
            return result
        parts = int(message.options.get("segments") or 1) if message.channel == Channel.SMS else 1
        return dataclasses.replace(result, cost_micros=self.config.price_micros * parts)

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """The bulk call (seed 000 takes many numbers in one request): one ledger read, one committed ledger write and
        one latency wait for all, each message decided exactly as :meth:`send` decides it alone."""
        if not messages:
            return []
        try:
            history = _histories(_ledger_engine(self.config.ledger_url), self.name, [m.message_id for m in messages])
        except SQLAlchemyError as err:
            log.warning("simulator %s: ledger unreadable: %s", self.name, err)
            return [SendResult.unavailable(self.name, f"simulated provider store unavailable: {err}")] * len(messages)
        rows = [self._bulk_row(m, *history.get(m.message_id, (0, False))) for m in messages]
        try:
            _record_many(self.config.ledger_url, rows)
        except SQLAlchemyError as err:  # the commit may have happened: only reconcile can tell
            return [SendResult.unavailable(self.name, "simulated: connection refused") if row["outcome"] == UNAVAILABLE
                    else SendResult.ambiguous(self.name, f"simulated provider store failed mid-call: {err}")
                    for row in rows]
        timed_out = bool(self.config.timeout_ms and self.config.latency_ms > self.config.timeout_ms)
        time.sleep((self.config.timeout_ms if timed_out else self.config.latency_ms) / 1000)
        return [self._bulk_answer(row, timed_out) for row in rows]

    def _bulk_row(self, message: OutboundMessage, calls: int, accepted_before: bool) -> dict[str, Any]:
        attempt = calls + 1
        if self._draw("unavailable", message.message_id, attempt) < self.config.unavailable_rate:
            row = self._base_row(message, attempt) | {"outcome": UNAVAILABLE}
        elif self._draw("lost", message.message_id, attempt) < self.config.lost_rate:
            row = self._base_row(message, attempt) | {"outcome": LOST}
        else:
            row = self._decide(message, attempt, replay=accepted_before)
        return {column.name: None for column in LEDGER.columns if column.name != "id"} | {"replay": False} | row

    def _bulk_answer(self, row: dict[str, Any], timed_out: bool) -> SendResult:
        if row["outcome"] == UNAVAILABLE:
            return SendResult.unavailable(self.name, "simulated: connection refused", raw=_public(row))
        if row["outcome"] == LOST:
            return SendResult.ambiguous(self.name, "simulated: request lost on the way, no answer", raw=_public(row))
        if timed_out:
            return SendResult.ambiguous(self.name, f"simulated: no answer within {self.config.timeout_ms:.0f} ms, "
                                        "the request arrived", raw=_public(row))
        if self._draw("ambiguous", row["message_id"], row["attempt"]) < self.config.ambiguous_rate:
            return SendResult.ambiguous(self.name, "simulated: request received, answer lost", raw=_public(row))
        return self._answer(row)

    def _refuse_connection(self, message: OutboundMessage, attempt: int) -> SendResult:
        """Connection refused: nothing reached the provider, and the caller knows it."""
        row = self._not_received(message, attempt, UNAVAILABLE)
        return SendResult.unavailable(self.name, "simulated: connection refused", raw=row)

    def _lose_request(self, message: OutboundMessage, attempt: int) -> SendResult:
        """Lost on the way: nothing reached the provider, but the caller only sees a timeout (AMBIGUOUS)."""
        row = self._not_received(message, attempt, LOST)
        return SendResult.ambiguous(self.name, "simulated: request lost on the way, no answer", raw=row)

    def _not_received(self, message: OutboundMessage, attempt: int, outcome: str) -> dict[str, Any]:
        """Record an attempt that did NOT reach the provider (so the next one gets a new number)."""
        row = self._base_row(message, attempt) | {"outcome": outcome}
        try:
            _record(self.config.ledger_url, row)
        except SQLAlchemyError as err:
            log.warning("simulator %s: could not record a %s call: %s", self.name, outcome, err)
        return _public(row)

    def _decide(self, message: OutboundMessage, attempt: int, *, replay: bool) -> dict[str, Any]:
        row = self._base_row(message, attempt) | {"replay": replay}
        if not replay and self._draw("reject", message.message_id) < self.config.reject_rate:
            return row | {"outcome": REJECTED, "provider_code": self._reject_code(message)}
        failed = self._draw("dlr", message.message_id) < self.config.dlr_failure_rate
        return row | {
            "outcome": ACCEPTED,
            "provider_ref": self.reference(message.message_id),
            "dlr_status": DeliveryStatus.FAILED.value if failed else DeliveryStatus.DELIVERED.value,
            "dlr_due_at_ms": row["created_at"] + int(self.config.dlr_delay_ms),
        }

    def _base_row(self, message: OutboundMessage, attempt: int) -> dict[str, Any]:
        return {
            "provider": self.name, "message_id": message.message_id, "attempt": attempt,
            "recipient": message.recipient, "channel": str(message.channel), "created_at": _now_ms(),
        }

    def _reject_code(self, message: OutboundMessage) -> str:
        codes = _REJECT_CODES[Channel(message.channel)]
        return codes[int(self._draw("reject-code", message.message_id) * len(codes))]

    def _answer(self, row: dict[str, Any]) -> SendResult:
        if row["outcome"] == REJECTED:
            code = row["provider_code"]
            return SendResult.rejected(self.name, code, f"simulated refusal {code}", raw=_public(row),
                                       error_code=PROVIDER_CODES[code])
        return SendResult.accepted(self.name, row["provider_ref"], raw=_public(row))

    def reference(self, message_id: str) -> str:
        """The provider reference of ``message_id``: derived, so every resend and every worker gets the same one."""
        digest = hashlib.sha256(f"{self.config.seed}\x00{self.name}\x00{message_id}".encode()).hexdigest()
        return f"sim-{digest[:24]}"

    def _draw(self, *parts: object) -> float:
        return _draw(self.config.seed, *parts)

    # -- status lookup ----------------------------------------------------------------------------------------

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        """Answer from the ledger: no call that reached us means NOT_FOUND, which proves a resend is safe."""
        try:
            rows = self._lookup(ref)
        except SQLAlchemyError as err:
            return StatusResult(DeliveryStatus.UNKNOWN, ref.provider_ref, raw={"error": str(err)})
        accepted = [row for row in rows if row["outcome"] == ACCEPTED]
        if accepted:
            return self._report(accepted[0])
        if rows:
            return StatusResult(DeliveryStatus.FAILED, ref.provider_ref, rows[-1]["provider_code"], raw=rows[-1])
        return StatusResult(DeliveryStatus.NOT_FOUND, ref.provider_ref)

    def _lookup(self, ref: ProviderRef) -> list[dict[str, Any]]:
        where = LEDGER.c.provider_ref == ref.provider_ref if ref.provider_ref else LEDGER.c.message_id == ref.message_id
        stmt = (select(LEDGER).where(LEDGER.c.provider == self.name, LEDGER.c.outcome.in_((ACCEPTED, REJECTED)), where)
                .order_by(LEDGER.c.id))
        with _ledger_engine(self.config.ledger_url).connect() as conn:
            return [_public(dict(row._mapping)) for row in conn.execute(stmt)]

    def _report(self, row: dict[str, Any]) -> StatusResult:
        if _now_ms() < row["dlr_due_at_ms"]:
            return StatusResult(DeliveryStatus.ACCEPTED, row["provider_ref"], raw=row)
        if row["dlr_status"] == DeliveryStatus.FAILED.value:
            return StatusResult(DeliveryStatus.FAILED, row["provider_ref"], DLR_FAILURE_CODE, raw=row)
        duration = None
        if row["channel"] == Channel.VOICE.value:  # a deterministic billed call length, 5..59 s
            duration = 5 + int(self._draw("duration", row["message_id"]) * 55)
        return StatusResult(DeliveryStatus.DELIVERED, row["provider_ref"], duration_seconds=duration, raw=row)

    # -- callbacks --------------------------------------------------------------------------------------------

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """One JSON object or a list of them: delivery reports, or inbound replies with ``"type": "reply"``."""
        self._check_signature(headers, body)
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise ValidationError(Code.INVALID_INPUT, f"simulator callback is not JSON: {err}") from err
        items = payload if isinstance(payload, list) else [payload]
        return [self._event(item) for item in items]

    def _check_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        """The HTTP drivers' scheme (id and time signed with the body), under the simulator's own header name."""
        verify_signature(headers, body, self.config.callback_secret or None, signature_header=SIGNATURE_HEADER)

    def _event(self, item: object) -> DeliveryEvent:
        if not isinstance(item, dict):
            raise ValidationError(Code.INVALID_INPUT, "each simulator callback event must be a JSON object")
        common: dict[str, Any] = {
            "provider": self.name, "event_id": _opt_str(item, "eventId"), "occurred_at": _parse_at(item.get("at")),
            "raw": item,
        }
        if item.get("type") == "reply":
            return DeliveryEvent(status=DeliveryStatus.UNKNOWN, reply_from=_opt_str(item, "from"),
                                 reply_to=_opt_str(item, "to"), reply_text=_opt_str(item, "text"), **common)
        status = _CALLBACK_STATUS.get(str(item.get("status", "")).upper(), DeliveryStatus.UNKNOWN)
        duration = item.get("duration")
        return DeliveryEvent(status=status, provider_ref=_opt_str(item, "ref"), message_id=_opt_str(item, "messageId"),
                             provider_code=_opt_str(item, "code"),
                             duration_seconds=duration if isinstance(duration, int) else None, **common)


# -- helpers ----------------------------------------------------------------------------------------------------


def _draw(seed: int, *parts: object) -> float:
    """A number in [0, 1) that depends only on its inputs, so any worker in any order draws the same one."""
    key = "\x00".join(str(part) for part in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def _now_ms() -> int:
    return int(time.time() * 1000)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row as plain JSON-friendly values (booleans from SQLite come back as ints)."""
    return {k: (bool(v) if k == "replay" and v is not None else v) for k, v in row.items()}


def _opt_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    return None if value is None else str(value)


def _parse_at(value: object) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as err:
        raise ValidationError(Code.INVALID_INPUT, f"callback 'at' is not an ISO 8601 time: {value!r}") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def sign_callback(secret: str, body: bytes, *, webhook_id: str | None = None,
                  timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign ``body`` with the configured callback secret: delivery id, time and SIGNATURE_HEADER."""
    return signed_webhook_headers(secret, body, webhook_id=webhook_id, timestamp=timestamp,
                                  signature_header=SIGNATURE_HEADER)


# -- the ledger -------------------------------------------------------------------------------------------------

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_ready_lock = threading.Lock()


def _ledger_engine(url: str) -> Engine:
    """The pooled engine for ``url`` (one per process, see worker.db) with the ledger table created once."""
    eng = db.engine(url)
    with _ready_lock:
        if eng not in _ready:
            _create_table(eng)
            _ready.add(eng)
    return eng


def _create_table(eng: Engine) -> None:
    try:
        _metadata.create_all(eng, checkfirst=True)
    except DBAPIError:
        # Another process created it between our check and our CREATE; PostgreSQL reports that race as an error.
        if not inspect(eng).has_table(LEDGER.name):
            raise


def _history(eng: Engine, provider: str, message_id: str) -> tuple[int, bool]:
    """How many calls this message made so far, and whether one was accepted."""
    stmt = select(func.count(), func.count(case((LEDGER.c.outcome == ACCEPTED, 1)))).where(
        LEDGER.c.provider == provider, LEDGER.c.message_id == message_id)
    with eng.connect() as conn:
        calls, accepted = conn.execute(stmt).one()
    return int(calls), bool(accepted)


def _histories(eng: Engine, provider: str, message_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """:func:`_history` of many messages in one query (those with no call yet are left out)."""
    stmt = (select(LEDGER.c.message_id, func.count(), func.count(case((LEDGER.c.outcome == ACCEPTED, 1))))
            .where(LEDGER.c.provider == provider, LEDGER.c.message_id.in_(message_ids)).group_by(LEDGER.c.message_id))
    with eng.connect() as conn:
        return {str(mid): (int(calls), bool(accepted)) for mid, calls, accepted in conn.execute(stmt)}


def _record_many(url: str, rows: list[dict[str, Any]]) -> None:
    """Write the calls of one bulk request in one transaction, committed when this returns."""
    with _ledger_engine(url).begin() as conn:
        conn.execute(insert(LEDGER), rows)


def _record(url: str, row: dict[str, Any]) -> None:
    """Write one call in its own transaction, committed when this returns."""
    with _ledger_engine(url).begin() as conn:
        conn.execute(insert(LEDGER).values(**row))


def ledger_calls(url: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """Every recorded call (or those of one message), oldest first, as dicts of the ledger's columns."""
    stmt = select(LEDGER).order_by(LEDGER.c.id)
    if message_id is not None:
        stmt = stmt.where(LEDGER.c.message_id == message_id)
    with _ledger_engine(url).connect() as conn:
        return [_public(dict(row._mapping)) for row in conn.execute(stmt)]


def ledger_counts(url: str, provider: str | None = None) -> dict[str, int]:
    """message_id -> number of ACCEPTED calls (replays included): more than 1 means the message was sent twice."""
    stmt = select(LEDGER.c.message_id, func.count()).where(LEDGER.c.outcome == ACCEPTED).group_by(LEDGER.c.message_id)
    if provider is not None:
        stmt = stmt.where(LEDGER.c.provider == provider)
    with _ledger_engine(url).connect() as conn:
        return {message_id: int(count) for message_id, count in conn.execute(stmt)}


def pending_reports(url: str, now_ms: int, provider: str | None = None) -> list[dict[str, Any]]:
    """First acceptances whose delivery report is due by ``now_ms``: what a benchmark would push as callbacks."""
    stmt = (select(LEDGER).where(LEDGER.c.outcome == ACCEPTED, LEDGER.c.replay.is_(False),
                                 LEDGER.c.dlr_due_at_ms <= now_ms).order_by(LEDGER.c.dlr_due_at_ms, LEDGER.c.id))
    if provider is not None:
        stmt = stmt.where(LEDGER.c.provider == provider)
    with _ledger_engine(url).connect() as conn:
        return [_public(dict(row._mapping)) for row in conn.execute(stmt)]


def report_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The callback body (one event) that :meth:`SimulatedProvider.parse_callback` accepts for a ledger row."""
    at = dt.datetime.fromtimestamp(row["dlr_due_at_ms"] / 1000, tz=dt.UTC)
    payload = {"ref": row["provider_ref"], "messageId": row["message_id"], "status": row["dlr_status"],
               "eventId": f"{row['provider_ref']}-dlr", "at": at.isoformat()}
    if row["dlr_status"] == DeliveryStatus.FAILED.value:
        payload["code"] = DLR_FAILURE_CODE
    return payload
