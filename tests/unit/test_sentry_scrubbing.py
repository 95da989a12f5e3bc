"""Sentry and logs end to end (docs/reliability.md S5): our own events are captured by a recording transport.

A function and a Celery task hold a phone number, an email address and an OTP in their locals
and in the exception message; a log call carries them too. Every captured envelope is
serialised and searched for the raw values: the figure is the number of occurrences (0).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope

from worker.celery_typed import celery_task
from worker.observability import CELERY_LOGGERS, PiiFilter, configure_logging, init_sentry, scrub_event

from support import RecordingTransport

PHONE = "+18135551234"
EMAIL = "member@example.com"
OTP = "482913"
#: Every raw form that must never leave the process (the national number too).
RAW = (PHONE, "8135551234", EMAIL, OTP)
DSN = "http://public@127.0.0.1:9/1"


@dataclass(frozen=True)
class _Settings:
    sentry_dsn: str
    environment: str = "test"

def _close_sentry() -> None:
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture()
def transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingTransport]:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    recorder = RecordingTransport()
    assert init_sentry(_Settings(DSN), transport=recorder) is True
    try:
        yield recorder
    finally:
        _close_sentry()


@pytest.fixture()
def pii_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
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


def _serialised(envelopes: list[Envelope]) -> str:
    return "\n".join(envelope.serialize().decode("utf-8") for envelope in envelopes)


def _events(envelopes: list[Envelope]) -> list[Any]:
    return [event for envelope in envelopes if (event := envelope.get_event()) is not None]


def _raw_count(text: str) -> int:
    return sum(text.count(raw) for raw in RAW)


def _send_otp(to: str, email: str, code: str) -> None:
    body = f"Your OTP is {code}"
    recipient = {"to": to, "email": email, "body": body}
    raise RuntimeError(f"provider refused {body} for {to} ({email}); recipient={recipient!r}")


def test_init_sentry_without_dsn_does_nothing() -> None:
    assert init_sentry(_Settings("")) is False
    assert not sentry_sdk.get_client().is_active()


def test_exception_and_log_events_carry_no_raw_pii(
    transport: RecordingTransport, pii_logging: pytest.LogCaptureFixture
) -> None:
    logging.warning("queued %s for %s", f"Your code is {OTP}", EMAIL)  # becomes a breadcrumb
    try:
        _send_otp(PHONE, EMAIL, OTP)
    except RuntimeError:
        sentry_sdk.capture_exception()
    logging.error("sending %s to %s", f"Your OTP is {OTP}", PHONE)
    sentry_sdk.capture_message(f"manual note about {PHONE}", level="warning")
    sentry_sdk.flush()

    events = _events(transport.envelopes)
    assert len(events) == 3
    exception_event, log_event, message_event = events
    text = _serialised(transport.envelopes)
    text += json.dumps(events)
    log_text = pii_logging.text + "\n".join(r.getMessage() for r in pii_logging.records)
    figure = _raw_count(text) + _raw_count(log_text)
    print(f"S5 figure: raw PII occurrences in {len(events)} captured events and "
          f"{len(pii_logging.records)} log records: {figure}")
    assert figure == 0

    value = exception_event["exception"]["values"][0]["value"]
    assert "+1******1234" in value and "m***@example.com" in value and "******" in value
    frame = exception_event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["function"] == "_send_otp"
    assert "vars" not in frame  # include_local_variables=False
    assert "+1******1234" in json.dumps(log_event["logentry"])
    assert "******" in json.dumps(log_event["logentry"])
    assert message_event["message"] == "manual note about +1******1234"
    crumbs = [c["message"] for c in exception_event["breadcrumbs"]["values"]]
    assert "queued Your code is ****** for m***@example.com" in crumbs
    # structural fields are untouched
    assert len(exception_event["event_id"]) == 32 and exception_event["environment"] == "test"


def test_celery_task_failure_event_carries_no_raw_pii(transport: RecordingTransport) -> None:
    from celery import Celery

    app = Celery("hexavox-pii-test", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=False, task_store_eager_result=False)

    @celery_task(app, "hexavox.test.send_otp")
    def send_otp(payload: dict[str, Any]) -> str:
        _send_otp(payload["to"], payload["email"], payload["otp"])
        return "never"

    payload = {"to": PHONE, "email": EMAIL, "otp": OTP}
    result = send_otp.apply(args=(payload,))
    assert result.failed()
    sentry_sdk.flush()

    events = _events(transport.envelopes)
    assert events, "the Celery integration captured nothing"
    text = _serialised(transport.envelopes)
    assert _raw_count(text) == 0
    event = events[-1]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert "+1******1234" in event["exception"]["values"][-1]["value"]
    assert event["exception"]["values"][-1]["mechanism"]["type"] == "celery"
    job = event["extra"]["celery-job"]
    assert job["task_name"] == "hexavox.test.send_otp" and job["args"] == job["kwargs"] == "[Filtered]"
    assert len(event["tags"]["celery_task_id"]) == 36  # the task id (a UUID) survives scrubbing


def test_scrub_event_keeps_structure_and_filters_sensitive_keys() -> None:
    event = {
        "event_id": "0123456789abcdef0123456789abcdef",
        "timestamp": "2025-01-02T03:04:05.123456Z",
        "message": f"send {OTP} to {PHONE}",
        "logentry": {"message": "sending %s to %s", "params": [OTP, PHONE], "formatted": f"sending {OTP} to {PHONE}"},
        "extra": {"to": PHONE, "note": EMAIL, "attempt": 2},
        "tags": {"queue": "otp", "recipient": PHONE},
        "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}},
        "request": {"headers": {"Authorization": "Bearer abc", "X-Api-Secret": "s"}, "query_string": f"to={PHONE}"},
        "user": {"id": "merchant-7", "email": EMAIL},
        "breadcrumbs": {"values": [{"message": f"code {OTP}", "data": {"body": "hello", "n": 1},
                                    "timestamp": "2025-01-02T03:04:05Z", "category": "hexavox"}]},
        "modules": {"sentry-sdk": "2.75.0", "tzdata": "2025.2"},
    }
    out = scrub_event(event)
    assert out["event_id"] == event["event_id"] and out["timestamp"] == event["timestamp"]
    assert out["modules"] == event["modules"] and out["contexts"] == event["contexts"]
    assert out["message"] == "send ****** to +1******1234"
    assert out["logentry"] == {"message": "sending %s to %s", "params": ["******", "+1******1234"],
                               "formatted": "sending ****** to +1******1234"}
    assert out["extra"] == {"to": "[Filtered]", "note": "m***@example.com", "attempt": 2}
    assert out["tags"] == {"queue": "otp", "recipient": "[Filtered]"}
    assert out["request"] == {"headers": {"Authorization": "[Filtered]", "X-Api-Secret": "[Filtered]"},
                              "query_string": "to=+1******1234"}
    assert out["user"] == {"id": "merchant-7", "email": "[Filtered]"}
    assert out["breadcrumbs"]["values"][0] == {"message": "code ******", "data": {"body": "[Filtered]", "n": 1},
                                               "timestamp": "2025-01-02T03:04:05Z", "category": "hexavox"}
    assert _raw_count(json.dumps(out)) == 0
