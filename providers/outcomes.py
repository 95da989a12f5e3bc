"""The one classifier: what a provider's answer, or a failure to get one, means for the message.

Every driver keeps its own code table (the provider's codes are its business), but no driver, and nothing after
the driver, decides on its own what an outcome allows. :func:`classify` turns one piece of evidence (a provider
code looked up in the driver's table, a bare HTTP status, an SMTP reply, or a transport failure) into one of the
four :class:`SendOutcome` values; :data:`OUTCOME_RULES` then says, for each outcome, whether routing may fail over,
whether the message may be sent again, and whether it counts against the provider's breaker. Routing, the attempt
counter, the bulk path and the breaker ask these rules instead of re-deciding.

The rule that matters most: an AMBIGUOUS message may have reached the provider, so it is never sent again and never
failed over; only reconcile's lookup may prove it safe (:func:`lookup_permits_resend`). Moving one code from
AMBIGUOUS to UNAVAILABLE can therefore deliver a message twice, which is why tests/unit/test_outcome_tables.py
pins every row of every table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from providers.base import DeliveryStatus, SendOutcome, SendResult
from worker.catalogue import Code

__all__ = [
    "CodeTable",
    "SmtpReplyTable",
    "OutcomeRule",
    "OUTCOME_RULES",
    "HTTP_STATUS_OUTCOMES",
    "NOT_SENT_ERRORS",
    "ProviderCode",
    "HttpStatus",
    "SmtpReply",
    "TransportFailure",
    "Evidence",
    "Verdict",
    "classify",
    "result_for",
    "may_fail_over",
    "may_send_again",
    "counts_against_provider",
    "lookup_permits_resend",
]

#: A provider code -> (what dispatch may do next, the catalogue code for a REJECTED message).
CodeTable = Mapping[str, tuple[SendOutcome, Code | None]]
#: An SMTP reply code -> the same pair.
SmtpReplyTable = Mapping[int, tuple[SendOutcome, Code | None]]


@dataclass(frozen=True)
class OutcomeRule:
    """What one outcome allows after the call."""

    #: Routing may try the next provider of the route (the first one certainly never got the message).
    fail_over: bool
    #: The message goes back to QUEUED and is sent again later, its delivery not counted towards parking it.
    send_again: bool
    #: The outcome is a sign of trouble at the provider and feeds its circuit breaker.
    provider_trouble: bool


OUTCOME_RULES: Mapping[SendOutcome, OutcomeRule] = {
    SendOutcome.ACCEPTED: OutcomeRule(fail_over=False, send_again=False, provider_trouble=False),
    SendOutcome.REJECTED: OutcomeRule(fail_over=False, send_again=False, provider_trouble=False),
    SendOutcome.UNAVAILABLE: OutcomeRule(fail_over=True, send_again=True, provider_trouble=True),
    SendOutcome.AMBIGUOUS: OutcomeRule(fail_over=False, send_again=False, provider_trouble=True),
}


def may_fail_over(outcome: SendOutcome) -> bool:
    """True when the next provider of the route may be tried: only when nothing reached this one."""
    return OUTCOME_RULES[outcome].fail_over


def may_send_again(outcome: SendOutcome) -> bool:
    """True when the message may go back to QUEUED for another send; never after AMBIGUOUS."""
    return OUTCOME_RULES[outcome].send_again


def counts_against_provider(outcome: SendOutcome) -> bool:
    """True when the outcome feeds the provider's breaker as a failure."""
    return OUTCOME_RULES[outcome].provider_trouble


def lookup_permits_resend(status: DeliveryStatus) -> bool:
    """Reconcile's resend check: only the provider's proof that it never received the message allows a resend."""
    return status is DeliveryStatus.NOT_FOUND


#: HTTP statuses that settle a send when the body carries no provider code we know. A status that is not listed
#: (any other 4xx, every 5xx including gateway 502/503/504) is AMBIGUOUS: neither API documents that such an
#: answer means "not processed", and resending a message the provider did take delivers it twice.
HTTP_STATUS_OUTCOMES: Mapping[int, SendOutcome] = {
    400: SendOutcome.REJECTED,  # the provider read the request and refused it
    413: SendOutcome.REJECTED,
    422: SendOutcome.REJECTED,
    401: SendOutcome.UNAVAILABLE,  # our credentials: the message is fine, another provider may take it
    403: SendOutcome.UNAVAILABLE,
    404: SendOutcome.UNAVAILABLE,  # wrong base URL: the request reached no endpoint that sends
    405: SendOutcome.UNAVAILABLE,
    408: SendOutcome.UNAVAILABLE,  # the server gave up reading our request before processing it
    429: SendOutcome.UNAVAILABLE,  # throttled: refused before processing
}

#: Transport errors raised before a byte of the request could have reached the provider.
NOT_SENT_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.ConnectError,  # refused, unreachable, DNS failure, TLS handshake failure
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(frozen=True)
class ProviderCode:
    """A code in the provider's answer, read through the driver's table."""

    code: str
    table: CodeTable


@dataclass(frozen=True)
class HttpStatus:
    """An HTTP answer whose body carries no provider code we know."""

    status: int


@dataclass(frozen=True)
class SmtpReply:
    """An SMTP refusal reply. ``phase`` is the command it answered; ``content_started`` whether DATA was sent."""

    code: int
    phase: str
    content_started: bool
    table: SmtpReplyTable


@dataclass(frozen=True)
class TransportFailure:
    """No answer came. ``request_written``: whether the request may have reached the provider; None lets the
    error's class decide (the HTTP client's errors say which phase failed)."""

    error: BaseException
    request_written: bool | None = None


Evidence = ProviderCode | HttpStatus | SmtpReply | TransportFailure


@dataclass(frozen=True)
class Verdict:
    outcome: SendOutcome
    #: For REJECTED: the catalogue code the message fails with.
    error_code: Code | None = None
    #: False when the evidence was outside every table (an unmapped code): the outcome is the cautious default.
    known: bool = True


def classify(evidence: Evidence) -> Verdict:
    """The outcome ``evidence`` proves. Anything a table does not settle is AMBIGUOUS, never a guessed success or
    a guessed "nothing sent"."""
    if isinstance(evidence, ProviderCode):
        row = evidence.table.get(evidence.code)
        return _verdict(*row) if row is not None else Verdict(SendOutcome.AMBIGUOUS, known=False)
    if isinstance(evidence, HttpStatus):  # no 2xx is listed: a success we cannot read is not a success
        outcome = HTTP_STATUS_OUTCOMES.get(evidence.status)
        return _verdict(outcome, None) if outcome is not None else Verdict(SendOutcome.AMBIGUOUS, known=False)
    if isinstance(evidence, SmtpReply):
        return _smtp(evidence)
    return _transport(evidence)


def _verdict(outcome: SendOutcome, code: Code | None) -> Verdict:
    """REJECTED always carries a catalogue code; the other outcomes never do."""
    if outcome is SendOutcome.REJECTED:
        return Verdict(outcome, code or Code.PROVIDER_REJECTED)
    return Verdict(outcome)


def _smtp(reply: SmtpReply) -> Verdict:
    """MAIL refusals concern our sender or account (another provider may take it); a 4yz is transient and a 5yz
    final when the table has no better word; a reply outside both is AMBIGUOUS once the content went out."""
    if reply.phase == "MAIL":
        return Verdict(SendOutcome.UNAVAILABLE)
    if reply.code in reply.table:
        return _verdict(*reply.table[reply.code])
    if 400 <= reply.code < 500:
        return Verdict(SendOutcome.UNAVAILABLE)
    if 500 <= reply.code < 600:
        return Verdict(SendOutcome.REJECTED, Code.PROVIDER_REJECTED)
    return Verdict(SendOutcome.AMBIGUOUS if reply.content_started else SendOutcome.UNAVAILABLE, known=False)


def _transport(failure: TransportFailure) -> Verdict:
    """UNAVAILABLE only when the request certainly never left; everything else may have been processed."""
    written = failure.request_written
    if written is None:
        written = not isinstance(failure.error, NOT_SENT_ERRORS)
    return Verdict(SendOutcome.AMBIGUOUS if written else SendOutcome.UNAVAILABLE)


def result_for(provider: str, evidence: Evidence, *, detail: str, raw: Any,
               provider_code: str | None = None) -> SendResult:
    """The non-accepted :class:`SendResult` of ``evidence``; an unmapped provider code says so in its detail."""
    verdict = classify(evidence)
    if verdict.outcome is SendOutcome.ACCEPTED:
        raise ValueError("an accepted result needs a provider reference; build it with SendResult.accepted")
    if isinstance(evidence, ProviderCode):
        provider_code = evidence.code
        if not verdict.known:
            detail = f"unmapped provider code {evidence.code}: {detail}"
    elif isinstance(evidence, SmtpReply):
        provider_code = str(evidence.code)
    return SendResult(verdict.outcome, provider, provider_code=provider_code, error_code=verdict.error_code,
                      detail=detail, raw=raw)
