"""Every row of every driver's code table, every HTTP status and every transport failure, pinned.

The expected rows below are a copy, on purpose: changing a row in a driver's table (moving a code from AMBIGUOUS to
UNAVAILABLE can send a message twice) fails here until the copy is changed too, in the same reviewed commit. Each
row is also walked through routing, to show that nothing classified AMBIGUOUS is ever sent again or failed over.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping

import httpx
import pytest

from providers.base import (
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.breaker import LocalBreaker
from providers.http_common import outcome_for_error, outcome_for_http_status
from providers.http_sms_codes import HEXA_BULK_CODES, HEXA_SEND_CODES, PANEL_SEND_CODES
from providers.http_voice_shape import VOICE_SEND_CODES
from providers.outcomes import (
    OUTCOME_RULES,
    Evidence,
    HttpStatus,
    OutcomeRule,
    ProviderCode,
    SmtpReply,
    TransportFailure,
    Verdict,
    classify,
    counts_against_provider,
    lookup_permits_resend,
    may_fail_over,
    may_send_again,
    result_for,
)
from providers.routing import dispatch_with_failover
from providers.simulated import SIMULATED_SEND_CODES
from providers.smtp_email import SMTP_REPLY_CODES
from providers.throttle import LocalThrottle
from schema.states import Channel
from worker.catalogue import Code

_LETTER = {"A": SendOutcome.AMBIGUOUS, "U": SendOutcome.UNAVAILABLE, "R": SendOutcome.REJECTED}


def _rows(text: str) -> dict[str, Verdict]:
    """``"E102 U, E401 R SMS_TOO_LONG"`` -> the verdict each code must get."""
    rows = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, letter, *catalogue = item.split()
        rows[code] = Verdict(_LETTER[letter], Code[catalogue[0]] if catalogue else None)
    return rows


HEXA = _rows("""
    E102 U, E103 A, E403 A, E400 R BULK_MUST_BE_MKT, E401 R SMS_TOO_LONG, E402 R SCHEDULE_OUT_OF_WINDOW,
    E404 R OTP_SINGLE_RECIPIENT, E405 R TXN_TOO_MANY_RECIPIENTS, E406 R INVALID_MOBILE_NUMBER,
    E407 R SMS_NODES_REQUIRED, E408 R SMS_NODE_TO_REQUIRED, E409 R TOO_MANY_SMS_NODES, E410 R TO_CONTAINS_COMMAS,
    E411 R SMS_NODE_TO_EMPTY, E412 R BODY_REQUIRED_IN_NODE_OR_GLOBAL, E413 R INVALID_INPUT, E600 R TO_REQUIRED,
    E601 R BODY_EMPTY, E602 R SENDER_REQUIRED, E603 R PROVIDER_REJECTED, E604 R INVALID_UNICODE_FLAG,
    E605 R PROVIDER_REJECTED, E606 R INVALID_FLASH_FLAG, E607 R INVALID_CAMPAIGN_NAME, E608 R INVALID_REF,
    E609 R INVALID_REF, E610 R INVALID_REF, E611 R TYPE_REQUIRED, E612 R PROVIDER_REJECTED, E613 R LIST_ID_REQUIRED,
    E614 R LIST_SEND_NOT_OTP, E615 R INVALID_TYPE, E616 R SENDER_REQUIRED, E617 R PROVIDER_REJECTED,
    E618 R BODY_EMPTY, E619 R INVALID_SENDER_PATTERN, E620 A, E621 R INVALID_SENDER_PATTERN,
    E622 R INVALID_SENDER_PATTERN, E623 U, E624 U, E625 U, E626 A, E638 R UPLOAD_REQUIRED, E639 R UPLOAD_NOT_CSV,
    E640 R UPLOAD_TOO_LARGE, E641 R INVALID_SOURCE_LENGTH, E642 R INVALID_SOURCE_TYPE,
""")
#: A many-numbers request's own answer: the send table, but the codes that refuse the grouping send each alone.
HEXA_BULK = HEXA | _rows("E400 U, E404 U, E405 U, E409 U")
PANEL = _rows("""
    101 R TO_REQUIRED, 102 R BODY_EMPTY, 104 U, 105 U, 201 U, 202 R INVALID_MOBILE_NUMBER,
    203 R INVALID_SENDER_PATTERN, 207 U, 208 U, 209 U, 210 U, 211 R PROVIDER_REJECTED, 301 U, 302 U, 303 U, 306 U,
    307 R SCHEDULE_OUT_OF_WINDOW, 308 R INVALID_CAMPAIGN_NAME, 309 R LIST_NOT_FOUND, 310 R SMS_TOO_LONG,
    311 R DUPLICATE_WITHIN_WINDOW, 400 R PROVIDER_REJECTED, 401 R PROVIDER_REJECTED, 402 R PROVIDER_REJECTED,
    403 R PROVIDER_REJECTED, 418 U, 506 A, 601 A, 602 U, 603 R INVALID_SENDER_PATTERN, 604 R INVALID_MOBILE_NUMBER,
    606 R SCHEDULE_OUT_OF_WINDOW, 607 R INVALID_CAMPAIGN_NAME, 608 R SCHEDULE_OUT_OF_WINDOW,
""")
VOICE = _rows("""
    INVALID_NUMBER R INVALID_MOBILE_NUMBER, INVALID_TEXT R INVALID_VOICE_REQUEST,
    TEXT_TOO_LONG R INVALID_VOICE_REQUEST, INVALID_TIMEOUT R INVALID_VOICE_REQUEST,
    INVALID_CALLER_ID R INVALID_SENDER_PATTERN, DESTINATION_BLOCKED R DESTINATION_NOT_ALLOWED,
    INSUFFICIENT_FUNDS R INSUFFICIENT_BALANCE, AUTH_FAILED U, RATE_LIMITED U, CAPACITY U, INTERNAL A,
""")
SIMULATED = _rows("SIM-21 R INVALID_MOBILE_NUMBER, SIM-23 R INVALID_EMAIL, SIM-30 R PROVIDER_REJECTED")
SMTP = {int(code): verdict for code, verdict in _rows("""
    421 U, 450 U, 451 U, 452 U, 550 R INVALID_EMAIL, 551 R INVALID_EMAIL, 553 R INVALID_EMAIL,
    552 R PROVIDER_REJECTED, 554 R PROVIDER_REJECTED,
""").items()}
#: HTTP statuses that settle a send without a provider code; every other status is AMBIGUOUS.
HTTP = {int(code): verdict for code, verdict in _rows("""
    400 R PROVIDER_REJECTED, 413 R PROVIDER_REJECTED, 422 R PROVIDER_REJECTED,
    401 U, 403 U, 404 U, 405 U, 408 U, 429 U,
""").items()}
#: The HTTP client's errors raised before a byte of the request could have left; every other one is AMBIGUOUS.
NOT_SENT = {"ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol"}

TABLES = {
    "http_sms hexa": (HEXA_SEND_CODES, HEXA),
    "http_sms hexa many-numbers": (HEXA_BULK_CODES, HEXA_BULK),
    "http_sms panel": (PANEL_SEND_CODES, PANEL),
    "http_voice": (VOICE_SEND_CODES, VOICE),
    "simulated": (SIMULATED_SEND_CODES, SIMULATED),
}
CODE_ROWS = [(name, code) for name, (_, expected) in TABLES.items() for code in expected]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_has_exactly_the_pinned_codes(name: str) -> None:
    table, expected = TABLES[name]
    assert set(table) == set(expected)


def test_the_smtp_table_has_exactly_the_pinned_codes() -> None:
    assert set(SMTP_REPLY_CODES) == set(SMTP)


@pytest.mark.parametrize(("name", "code"), CODE_ROWS)
def test_every_provider_code_row_classifies_as_pinned(name: str, code: str) -> None:
    table, expected = TABLES[name]
    assert classify(ProviderCode(code, table)) == expected[code]
    raw = {"code": code}
    result = result_for("p", ProviderCode(code, table), detail="refused", raw=raw)
    assert (result.outcome, result.error_code, result.provider_code) == (expected[code].outcome,
                                                                        expected[code].error_code, code)
    assert (result.provider, result.detail, result.raw) == ("p", "refused", raw)


@pytest.mark.parametrize("code", sorted(SMTP))
@pytest.mark.parametrize("phase", ["RCPT", "DATA", "CONTENT"])
def test_every_smtp_row_classifies_as_pinned_after_mail(code: int, phase: str) -> None:
    assert classify(SmtpReply(code, phase, phase == "CONTENT", SMTP_REPLY_CODES)) == SMTP[code]


@pytest.mark.parametrize("code", [250, 421, 451, 550, 554, 599, 354])
def test_a_refused_mail_command_is_our_account_never_the_message(code: int) -> None:
    assert classify(SmtpReply(code, "MAIL", False, SMTP_REPLY_CODES)) == Verdict(SendOutcome.UNAVAILABLE)


@pytest.mark.parametrize("content_started", [False, True])
def test_smtp_replies_outside_the_table_follow_their_class(content_started: bool) -> None:
    def reply(code: int) -> Verdict:
        return classify(SmtpReply(code, "CONTENT", content_started, SMTP_REPLY_CODES))

    for transient in (400, 454, 499):
        assert reply(transient) == Verdict(SendOutcome.UNAVAILABLE), transient
    for permanent in (500, 556, 599):
        assert reply(permanent) == Verdict(SendOutcome.REJECTED, Code.PROVIDER_REJECTED), permanent
    odd = Verdict(SendOutcome.AMBIGUOUS if content_started else SendOutcome.UNAVAILABLE, known=False)
    for code in (250, 354, 399, 600):
        assert reply(code) == odd, code


def test_a_result_keeps_what_the_driver_knows_and_never_invents_an_acceptance() -> None:
    raw = {"smtp_code": 550}
    smtp = result_for("mail", SmtpReply(550, "RCPT", False, SMTP_REPLY_CODES), detail="RCPT answered 550", raw=raw)
    assert (smtp.provider, smtp.provider_code, smtp.detail, smtp.raw) == ("mail", "550", "RCPT answered 550", raw)
    http = result_for("sms", HttpStatus(503), detail="HTTP 503", raw=raw, provider_code="X1")
    assert (http.provider, http.provider_code, http.detail, http.raw, http.error_code) == (
        "sms", "X1", "HTTP 503", raw, None)
    with pytest.raises(ValueError, match="^an accepted result needs a provider reference; build it with SendResult"
                                         r"\.accepted$"):
        result_for("sms", ProviderCode("OK", {"OK": (SendOutcome.ACCEPTED, None)}), detail="", raw=None)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_code_no_table_knows_is_ambiguous_and_says_so(name: str) -> None:
    table, _ = TABLES[name]
    assert classify(ProviderCode("E999-not-a-code", table)) == Verdict(SendOutcome.AMBIGUOUS, known=False)
    result = result_for("p", ProviderCode("E999-not-a-code", table), detail="odd", raw=None)
    assert result.outcome is SendOutcome.AMBIGUOUS and result.error_code is None
    assert result.detail.startswith("unmapped provider code E999-not-a-code")


def test_every_http_status_classifies_as_pinned() -> None:
    for status in range(100, 600):
        expected = HTTP.get(status, Verdict(SendOutcome.AMBIGUOUS, known=False))
        assert classify(HttpStatus(status)) == expected, status
        assert outcome_for_http_status(status) is expected.outcome, status


def _error_classes(base: type[httpx.HTTPError]) -> set[type[httpx.HTTPError]]:
    found = {base}
    for sub in base.__subclasses__():
        found |= _error_classes(sub)
    return found


ERROR_CLASSES = sorted(_error_classes(httpx.HTTPError), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=[cls.__name__ for cls in ERROR_CLASSES])
def test_every_transport_error_class_classifies_as_pinned(error_class: type[httpx.HTTPError]) -> None:
    error = error_class("boom") if error_class is not httpx.HTTPStatusError else error_class(
        "boom", request=httpx.Request("GET", "http://x"), response=httpx.Response(500))
    sent_nothing = any(cls.__name__ in NOT_SENT for cls in error_class.__mro__)
    expected = SendOutcome.UNAVAILABLE if sent_nothing else SendOutcome.AMBIGUOUS
    assert classify(TransportFailure(error)).outcome is expected
    assert outcome_for_error("p", error).outcome is expected


@pytest.mark.parametrize("written", [False, True])
def test_a_transport_failure_the_driver_can_place_follows_its_word(written: bool) -> None:
    for error in (smtplib.SMTPServerDisconnected("gone"), TimeoutError("slow"), OSError("reset")):
        outcome = classify(TransportFailure(error, request_written=written)).outcome
        assert outcome is (SendOutcome.AMBIGUOUS if written else SendOutcome.UNAVAILABLE)


def test_what_each_outcome_allows_is_pinned() -> None:
    assert OUTCOME_RULES == {
        SendOutcome.ACCEPTED: OutcomeRule(fail_over=False, send_again=False, provider_trouble=False),
        SendOutcome.REJECTED: OutcomeRule(fail_over=False, send_again=False, provider_trouble=False),
        SendOutcome.UNAVAILABLE: OutcomeRule(fail_over=True, send_again=True, provider_trouble=True),
        SendOutcome.AMBIGUOUS: OutcomeRule(fail_over=False, send_again=False, provider_trouble=True),
    }
    assert [s for s in DeliveryStatus if lookup_permits_resend(s)] == [DeliveryStatus.NOT_FOUND]


# -- every row through routing: an AMBIGUOUS answer never reaches a second provider ---------------------------

MESSAGE = OutboundMessage("m1", Channel.SMS, "TXN", "+14155550100", "hi")


class _Answering:
    """A driver that answers every send with the result ``evidence`` classifies to, counting its calls."""

    channels = frozenset(Channel)
    max_rps = 0.0

    def __init__(self, name: str, evidence: Evidence | None) -> None:
        self.name, self.evidence, self.calls = name, evidence, 0

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        if self.evidence is None:
            return SendResult.accepted(self.name, "ref-1")
        return result_for(self.name, self.evidence, detail="", raw=None)

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        return StatusResult(DeliveryStatus.UNKNOWN)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        return []


EVIDENCE: list[tuple[str, Evidence]] = (
    [(f"{name} {code}", ProviderCode(code, TABLES[name][0])) for name, code in CODE_ROWS]
    + [(f"smtp {code}", SmtpReply(code, "CONTENT", True, SMTP_REPLY_CODES)) for code in SMTP]
    + [(f"http {status}", HttpStatus(status)) for status in (*HTTP, 200, 500, 502, 503, 504)]
    + [(f"transport {cls.__name__}", TransportFailure(cls("x"))) for cls in
       (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteError, httpx.RemoteProtocolError)]
)


@pytest.mark.parametrize(("label", "evidence"), EVIDENCE, ids=[label for label, _ in EVIDENCE])
def test_only_an_unavailable_answer_reaches_the_next_provider(label: str, evidence: Evidence) -> None:
    first, second = _Answering("first", evidence), _Answering("second", None)
    breaker = LocalBreaker()
    result, attempts = dispatch_with_failover(MESSAGE, [first, second], breaker=breaker, throttle=LocalThrottle(),
                                              max_wait=0.1)
    outcome = classify(evidence).outcome
    assert first.calls == 1
    if outcome is SendOutcome.UNAVAILABLE:
        assert second.calls == 1 and result.outcome is SendOutcome.ACCEPTED
    else:
        assert second.calls == 0 and result.outcome is outcome and len(attempts) == 1
    if outcome is SendOutcome.AMBIGUOUS:  # never resent, never failed over: reconcile's lookup decides
        assert not may_send_again(outcome) and not may_fail_over(outcome) and counts_against_provider(outcome)
