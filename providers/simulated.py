"""The simulated provider: a real driver whose behaviour is set by rates and a seed, with a ledger of every call.

Reliability tests and benchmarks need a provider that can be made slow, unavailable, refusing or *ambiguous* (it
took the message but the answer was lost) on demand, and that can say afterwards exactly how many times each
message reached it (docs/reliability.md section 1). That proof is the ledger (providers/simulated_ledger.py): every call
is committed in its own short transaction *before* the driver answers, so a worker killed right after the call still
leaves the evidence.

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
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

from sqlalchemy.exc import SQLAlchemyError

from providers.base import (
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.outcomes import CodeTable, ProviderCode, result_for
from providers.simulated_callbacks import SIGNATURE_HEADER, parse_events, sign_callback
from providers.simulated_config import SimulatorConfig
from providers.simulated_ledger import (
    ACCEPTED,
    DLR_FAILURE_CODE,
    LEDGER,
    LOST,
    REJECTED,
    UNAVAILABLE,
    full_row,
    histories,
    history,
    ledger_calls,
    ledger_counts,
    ledger_engine,
    now_ms,
    pending_reports,
    public_row,
    received_calls,
    record,
    record_first,
    record_many,
    report_payload,
)
from schema.states import Channel
from worker.catalogue import Code
from worker.settings import Settings

__all__ = [
    "SimulatedProvider", "SimulatorConfig", "PROVIDER_CODES", "SIMULATED_SEND_CODES", "LEDGER", "SIGNATURE_HEADER",
    "ledger_calls", "ledger_counts", "pending_reports", "report_payload", "sign_callback",
]

log = logging.getLogger(__name__)

#: The simulator's refusal codes and the catalogue codes they mean. The only place provider codes are translated.
PROVIDER_CODES: dict[str, Code] = {
    "SIM-21": Code.INVALID_MOBILE_NUMBER,  # SMS / voice: the number does not exist
    "SIM-23": Code.INVALID_EMAIL,  # email: the mailbox does not exist
    "SIM-30": Code.PROVIDER_REJECTED,  # content blocked
}
#: The same as the driver's code table: every code a refusal, with its catalogue code.
SIMULATED_SEND_CODES: CodeTable = {code: (SendOutcome.REJECTED, catalogue)
                                   for code, catalogue in PROVIDER_CODES.items()}
_REJECT_CODES: dict[Channel, tuple[str, ...]] = {
    Channel.SMS: ("SIM-21", "SIM-30"),
    Channel.VOICE: ("SIM-21", "SIM-30"),
    Channel.EMAIL: ("SIM-23", "SIM-30"),
}

class SimulatedProvider:
    """A provider for every channel whose outcomes come from :class:`SimulatorConfig`; see the module docstring."""

    channels: frozenset[Channel] = frozenset(Channel)
    #: Voice calls may be connected to an agent (``options["agentSip"]``, set by dispatch when one is AVAILABLE).
    rings_agents: bool = True

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
        """Decide, record in the ledger (committed), wait the latency, then answer or lose the answer.

        A message's first call (nearly every call) is decided as attempt 1 and written in one statement that
        writes nothing when the message has a call already; only then is its history read and the call decided
        again with the right attempt number.
        """
        first = self._bulk_row(message, 0, False)
        try:
            recorded = record_first(self.config.ledger_url, first)
        except SQLAlchemyError as err:  # the commit may have happened: only reconcile can tell
            if first["outcome"] == UNAVAILABLE:
                return SendResult.unavailable(self.name, "simulated: connection refused")
            return SendResult.ambiguous(self.name, f"simulated provider store failed mid-call: {err}")
        if recorded:
            return self._after_record(message, first)
        try:
            calls, accepted_before = history(ledger_engine(self.config.ledger_url), self.name, message.message_id)
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
            record(self.config.ledger_url, row)
        except SQLAlchemyError as err:  # the commit may have happened: only reconcile can tell
            return SendResult.ambiguous(self.name, f"simulated provider store failed mid-call: {err}")
        return self._after_record(message, row)

    def _after_record(self, message: OutboundMessage, row: dict[str, Any]) -> SendResult:
        """The answer to a call recorded in the ledger: refused or lost on the way, or after the latency."""
        if row["outcome"] == UNAVAILABLE:
            return SendResult.unavailable(self.name, "simulated: connection refused", raw=public_row(row))
        if row["outcome"] == LOST:
            return SendResult.ambiguous(self.name, "simulated: request lost on the way, no answer",
                                        raw=public_row(row))
        if self.config.timeout_ms and self.config.latency_ms > self.config.timeout_ms:
            time.sleep(self.config.timeout_ms / 1000)
            return SendResult.ambiguous(self.name, f"simulated: no answer within {self.config.timeout_ms:.0f} ms, "
                                        "the request arrived", raw=public_row(row))
        time.sleep(self.config.latency_ms / 1000)
        if self._draw("ambiguous", message.message_id, row["attempt"]) < self.config.ambiguous_rate:
            return SendResult.ambiguous(self.name, "simulated: request received, answer lost", raw=public_row(row))
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
            seen = histories(ledger_engine(self.config.ledger_url), self.name, [m.message_id for m in messages])
        except SQLAlchemyError as err:
            log.warning("simulator %s: ledger unreadable: %s", self.name, err)
            return [SendResult.unavailable(self.name, f"simulated provider store unavailable: {err}")] * len(messages)
        rows = [self._bulk_row(m, *seen.get(m.message_id, (0, False))) for m in messages]
        try:
            record_many(self.config.ledger_url, rows)
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
        return full_row(row)

    def _bulk_answer(self, row: dict[str, Any], timed_out: bool) -> SendResult:
        if row["outcome"] == UNAVAILABLE:
            return SendResult.unavailable(self.name, "simulated: connection refused", raw=public_row(row))
        if row["outcome"] == LOST:
            return SendResult.ambiguous(self.name, "simulated: request lost on the way, no answer", raw=public_row(row))
        if timed_out:
            return SendResult.ambiguous(self.name, f"simulated: no answer within {self.config.timeout_ms:.0f} ms, "
                                        "the request arrived", raw=public_row(row))
        if self._draw("ambiguous", row["message_id"], row["attempt"]) < self.config.ambiguous_rate:
            return SendResult.ambiguous(self.name, "simulated: request received, answer lost", raw=public_row(row))
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
            record(self.config.ledger_url, row)
        except SQLAlchemyError as err:
            log.warning("simulator %s: could not record a %s call: %s", self.name, outcome, err)
        return public_row(row)

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
            "recipient": message.recipient, "channel": str(message.channel), "created_at": now_ms(),
        }

    def _reject_code(self, message: OutboundMessage) -> str:
        codes = _REJECT_CODES[Channel(message.channel)]
        return codes[int(self._draw("reject-code", message.message_id) * len(codes))]

    def _answer(self, row: dict[str, Any]) -> SendResult:
        if row["outcome"] == REJECTED:
            code = row["provider_code"]
            return result_for(self.name, ProviderCode(code, SIMULATED_SEND_CODES), detail=f"simulated refusal {code}",
                              raw=public_row(row))
        return SendResult.accepted(self.name, row["provider_ref"], raw=public_row(row))

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
            rows = received_calls(self.config.ledger_url, self.name, ref.provider_ref, ref.message_id)
        except SQLAlchemyError as err:
            return StatusResult(DeliveryStatus.UNKNOWN, ref.provider_ref, raw={"error": str(err)})
        accepted = [row for row in rows if row["outcome"] == ACCEPTED]
        if accepted:
            return self._report(accepted[0])
        if rows:
            return StatusResult(DeliveryStatus.FAILED, ref.provider_ref, rows[-1]["provider_code"], raw=rows[-1])
        return StatusResult(DeliveryStatus.NOT_FOUND, ref.provider_ref)

    def _report(self, row: dict[str, Any]) -> StatusResult:
        if now_ms() < row["dlr_due_at_ms"]:
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
        return parse_events(self.name, headers, body, self.config.callback_secret)


# -- helpers ----------------------------------------------------------------------------------------------------


def _draw(seed: int, *parts: object) -> float:
    """A number in [0, 1) that depends only on its inputs, so any worker in any order draws the same one."""
    key = "\x00".join(str(part) for part in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
