"""worker.pii and the logging filter: what is masked, what is kept, and that nothing raises."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from worker.observability import CELERY_LOGGERS, PiiFilter, configure_logging, task_argsrepr
from worker.pii import FILTERED, is_sensitive_key, mask_email, mask_phone, scrub, scrub_text

PHONE = "+18135551234"
EMAIL = "member@example.com"
OTP = "482913"
RAW = (PHONE, "8135551234", EMAIL, OTP)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+18135551234", "+1******1234"),
        ("+447911123456", "+44******3456"),
        ("+33612345678", "+33*****5678"),
    ],
)
def test_mask_phone(value: str, expected: str) -> None:
    assert mask_phone(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("member@example.com", "m***@example.com"),
        ("Mary.Jones+sms@mail.example.org", "M***@mail.example.org"),
        ("not-an-address", "***"),
    ],
)
def test_mask_email(value: str, expected: str) -> None:
    assert mask_email(value) == expected


SCRUB_TEXT_CASES = [
    # phones: E.164, national with separators, inside other text
    ("send to +18135551234 now", "send to +1******1234 now"),
    ("+1 (813) 555-1234", "+1******1234"),
    ("call 813-555-1234.", "call ******1234."),
    ("call 813.555.1234", "call ******1234"),
    ("tel:+447911123456;ext", "tel:+44******3456;ext"),
    ("card 4111111111111111", "card ************1111"),
    # emails
    ("mail member@example.com today", "mail m***@example.com today"),
    ("<a.b-c+tag@sub.example.co.uk>", "<a***@sub.example.co.uk>"),
    # OTP-like codes (every 4-8 digit run, on purpose)
    ("Your OTP is 482913", "Your OTP is ******"),
    ("code:4829.", "code:****."),
    ("OTP482913", "OTP******"),
    ("took 2048 ms", "took **** ms"),
    ("12345678", "********"),
    ("ref 1234567", "ref *******"),
    ("ref 123456789", "ref *****6789"),
    ("555-1234", "***1234"),
    # kept: short numbers, ids, dates, addresses, decimals, hex tokens
    ("retry 3 of 5, E401", "retry 3 of 5, E401"),
    ("task 6f1c2a34-1234-4a5b-9c8d-123456789012 ok", "task 6f1c2a34-1234-4a5b-9c8d-123456789012 ok"),
    ("at 2025-01-02T12:00:00.123 done", "at 2025-01-02T12:00:00.123 done"),
    ("at 2025-01-02 12:00:00", "at 2025-01-02 12:00:00"),
    ("peer 192.168.100.200", "peer 192.168.100.200"),
    ("python 3.11.7 ratio 0.25", "python 3.11.7 ratio 0.25"),
    ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace 4bf92f3577b34da6a3ce929d0e0e4736"),
    ("", ""),
    ("no digits at all", "no digits at all"),
    # several in one line
    (
        "OTP 482913 to +18135551234 and member@example.com",
        "OTP ****** to +1******1234 and m***@example.com",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SCRUB_TEXT_CASES)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), SCRUB_TEXT_CASES)
def test_scrub_text_is_idempotent(text: str, expected: str) -> None:
    """Scrubbed twice (log filter, then Sentry) the masked forms survive, tails included."""
    assert scrub_text(scrub_text(text)) == expected


@pytest.mark.parametrize(
    "key",
    ["to", "To", "RECIPIENTS", "body", "text", "message", "subject", "otp", "code", "phone", "mobiles",
     "email", "secret", "api_key", "apiKey", "apiSecret", "api-secret", "password", "Authorization",
     "token", "X-Api-Secret", "x_api_secret", "contact", "recipient"],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)
    assert scrub({key: "anything"}) == {key: FILTERED}


@pytest.mark.parametrize("key", ["id", "merchantId", "type", "channel", "status", "queue", "attempt", 7, None])
def test_ordinary_keys_are_kept(key: Any) -> None:
    assert not is_sensitive_key(key)
    assert scrub({key: "E401"}) == {key: "E401"}


SCRUB_CASES: list[tuple[Any, Any]] = [
    ({"to": PHONE, "type": "OTP"}, {"to": FILTERED, "type": "OTP"}),
    ({"to": [PHONE, "+447911123456"]}, {"to": FILTERED}),
    ({"to": None}, {"to": None}),
    ({"note": f"ring {PHONE}", "n": 5, "ok": True}, {"note": "ring +1******1234", "n": 5, "ok": True}),
    ([EMAIL, (OTP, 3)], ["m***@example.com", ("******", 3)]),
    ({"headers": {"Authorization": "Bearer abc", "X-Api-Secret": "s3cr3t", "Accept": "json"}},
     {"headers": {"Authorization": FILTERED, "X-Api-Secret": FILTERED, "Accept": "json"}}),
    ({PHONE: "delivered"}, {"+1******1234": "delivered"}),
    ({"payload": {"contacts": [{"mobile": PHONE}], "sms": {"text": f"code {OTP}"}}},
     {"payload": {"contacts": FILTERED, "sms": {"text": FILTERED}}}),
    (b"to +18135551234", "to +1******1234"),
    (("a", {"otp": OTP}), ("a", {"otp": FILTERED})),
    (42, 42),
    (None, None),
]


@pytest.mark.parametrize(("obj", "expected"), SCRUB_CASES)
def test_scrub(obj: Any, expected: Any) -> None:
    assert scrub(obj) == expected


def test_scrub_keep_leaves_structural_keys_alone() -> None:
    event = {"event_id": "1234567890abcdef1234567890abcdef", "timestamp": "2025-01-02T03:04:05Z", "value": OTP}
    assert scrub(event, keep={"event_id", "timestamp"}) == {**event, "value": "******"}


def test_scrub_survives_cycles() -> None:
    loop: dict[str, Any] = {"note": PHONE}
    loop["self"] = loop
    out = scrub(loop)
    assert out["note"] == "+1******1234"
    assert PHONE not in repr(out)


def test_scrub_does_not_modify_its_input() -> None:
    payload = {"to": PHONE, "meta": {"note": EMAIL}}
    scrub(payload)
    assert payload == {"to": PHONE, "meta": {"note": EMAIL}}


def test_task_argsrepr_is_scrubbed_and_short() -> None:
    payload = {"to": PHONE, "sms": {"text": f"Your OTP is {OTP}"}, "type": "OTP", "note": EMAIL, "pad": "x" * 500}
    text = task_argsrepr(payload)
    assert text.startswith("({'to': '[Filtered]'")
    assert "'type': 'OTP'" in text and "m***@example.com" in text
    assert len(text) <= 256 and text.endswith("...")
    assert not any(raw in text for raw in RAW)


# --- logging -------------------------------------------------------------------------------------------


@pytest.fixture()
def pii_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """configure_logging() with caplog's handler on root; every filter and the root level undone afterwards."""
    root = logging.getLogger()
    level = root.level
    caplog.set_level(logging.INFO)
    configure_logging("INFO")
    yield caplog
    root.setLevel(level)
    for name in ("", *CELERY_LOGGERS):
        logger = logging.getLogger(name)
        for filterer in (logger, *logger.handlers):
            for f in [f for f in filterer.filters if isinstance(f, PiiFilter)]:
                filterer.removeFilter(f)


def _raw_count(text: str) -> int:
    return sum(text.count(raw) for raw in RAW)


def test_pii_filter_masks_log_records(pii_logging: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("hexavox.test")
    log.info("sending %s to %s", f"Your OTP is {OTP}", PHONE)
    log.error("bounce from %(addr)s", {"addr": EMAIL})
    log.warning({"to": PHONE})  # a non-str msg
    log.info("broken %d format", "not-a-number")  # a bad format string must not raise
    try:
        raise RuntimeError(f"provider refused {PHONE}")
    except RuntimeError:
        log.exception("send failed for %s", EMAIL)

    messages = [r.getMessage() for r in pii_logging.records]
    assert messages[0] == "sending Your OTP is ****** to +1******1234"
    assert messages[1] == "bounce from m***@example.com"
    assert "+1******1234" in messages[2]
    assert messages[3].startswith("broken %d format")
    assert "+1******1234" in pii_logging.text and "RuntimeError" in pii_logging.text
    everything = pii_logging.text + "\n".join(messages) + "\n".join(r.exc_text or "" for r in pii_logging.records)
    assert _raw_count(everything) == 0


def test_celery_success_line_is_scrubbed(pii_logging: pytest.LogCaptureFixture) -> None:
    from celery.app.trace import LOG_SUCCESS

    trace_logger = logging.getLogger("celery.app.trace")
    trace_logger.info(LOG_SUCCESS, {"id": "6f1c2a34-1234-4a5b-9c8d-123456789012", "name": "hexavox.sms.send",
                                    "runtime": 0.25, "return_value": repr({"to": PHONE, "otp": OTP})})
    assert pii_logging.records[-1].getMessage() == (
        "Task hexavox.sms.send[6f1c2a34-1234-4a5b-9c8d-123456789012] succeeded in 0.25s: "
        "{'to': '+1******1234', 'otp': '******'}"
    )
    assert any(isinstance(f, PiiFilter) for f in trace_logger.filters)


def test_filter_is_reinstalled_when_celery_sets_up_logging(pii_logging: pytest.LogCaptureFixture) -> None:
    from celery import signals

    logger = logging.getLogger("hexavox.test.celery-hijack")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        signals.after_setup_task_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None,
                                             format="", colorize=False)
        assert any(isinstance(f, PiiFilter) for f in handler.filters)
    finally:
        logger.removeHandler(handler)
        for f in list(logger.filters):
            logger.removeFilter(f)


def test_pii_filter_never_drops_a_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", (object(),), None)
    assert PiiFilter().filter(record) is True
    assert record.getMessage().startswith("value <object object at")


def test_task_durations_in_celery_log_lines_stay_readable() -> None:
    from worker.pii import scrub_text

    line = "Task hexavox.internal.dispatch[3f2a9c1e-1111-2222-3333-444455556666] succeeded in 0.012345678901s: 'SENT'"
    assert scrub_text(line) == line
    assert "1234" in scrub_text("call 813.555.1234") and "813.555" not in scrub_text("call 813.555.1234")
