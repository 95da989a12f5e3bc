"""JSON lines logs (HEXAVOX_LOG_FORMAT=json): task context on every record, contacts masked, extras scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from worker.observability import PiiFilter, configure_logging
from worker.telemetry import logs
from worker.telemetry.logs import ContextFilter, JsonLines

PHONE = "+18135551234"
EMAIL = "member@example.com"


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.addFilter(PiiFilter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("hexavox.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logs.clear()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_inside_a_task_carries_its_ids_and_masked_contacts(
        json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_lines
    logs.bind(task_name="hexavox.sms.send.v1", request_id="r-1", merchant="gym-a", message_id=None)
    logger.info("sending to %s and %s", PHONE, EMAIL)
    [line] = _lines(stream)
    assert line["message"] == "sending to +1******1234 and m***@example.com"
    assert (line["task_name"], line["request_id"], line["merchant"]) == ("hexavox.sms.send.v1", "r-1", "gym-a")
    assert "message_id" not in line
    assert line["level"] == "INFO" and line["logger"] == "hexavox.test.json" and line["timestamp"]


def test_extras_and_tracebacks_are_scrubbed_too(json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_lines
    # Celery's trace logger puts a task's return value in `data`: a text format never prints it, JSON would
    logger.info("Task succeeded", extra={"data": {"return_value": {"to": PHONE}, "note": f"for {EMAIL}"}})
    try:
        raise RuntimeError(f"provider refused {PHONE}")
    except RuntimeError:
        logger.exception("dispatch failed")
    text = stream.getvalue()
    assert PHONE not in text and EMAIL not in text
    first, second = _lines(stream)
    assert first["data"] == {"return_value": {"to": "[Filtered]"}, "note": "for m***@example.com"}
    assert "RuntimeError: provider refused +1******1234" in second["exc_info"]


def test_outside_a_task_there_is_no_context(json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_lines
    logs.clear()
    logger.warning("idle")
    [line] = _lines(stream)
    assert not {"task_name", "request_id", "message_id", "merchant"} & set(line)


def test_configure_logging_writes_json_lines_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        configure_logging("INFO", fmt="json")
        [ours] = root.handlers
        assert isinstance(ours.formatter, JsonLines)
        assert any(isinstance(f, PiiFilter) for f in ours.filters)
        assert any(isinstance(f, ContextFilter) for f in ours.filters)
        configure_logging("INFO", fmt="text")
        assert not isinstance(root.handlers[0].formatter, JsonLines)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
