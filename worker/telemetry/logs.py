"""JSON lines logging, and the task context every record carries (request id, message id, merchant, task).

``HEXAVOX_LOG_FORMAT=json`` makes every handler write one JSON object per line (python-json-logger) for a
log shipper. The :class:`worker.observability.PiiFilter` still runs first on the text; :class:`JsonLines`
also scrubs the *extra* fields a record brings (Celery puts a task's return value in ``data``), which a text
format never prints but a JSON formatter would.

The context is set from Celery's ``task_prerun`` signal (see :mod:`worker.telemetry.celery_hooks`) in
context variables, so each thread of a thread pool carries its own task's ids.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, Final

from pythonjsonlogger.json import JsonFormatter

from worker.pii import scrub

__all__ = ["ContextFilter", "JsonLines", "bind", "clear", "CONTEXT_FIELDS"]

#: Record attributes (and JSON keys) set from the running task; absent outside a task.
CONTEXT_FIELDS: Final = ("task_name", "request_id", "message_id", "merchant")
_context: ContextVar[dict[str, str] | None] = ContextVar("hexavox_log_context", default=None)
#: JSON keys copied untouched: the formatter's own fields and the context ids (never personal data). The
#: message, the traceback (formatted afresh from ``exc_info``) and every extra are scrubbed.
_STRUCTURAL: Final = frozenset({"timestamp", "level", "logger", "process", *CONTEXT_FIELDS})


def bind(**values: str | None) -> None:
    """Set the context of the task now running in this thread (None values are left out)."""
    _context.set({key: str(value)[:100] for key, value in values.items() if value})


def clear() -> None:
    _context.set(None)


class ContextFilter(logging.Filter):
    """Copies the task context onto each record (``record.request_id`` ...); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonLines(JsonFormatter):
    """One JSON object per record: timestamp, level, logger, process, message, context ids, scrubbed extras."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                         rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
                         timestamp=False)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value if key in _STRUCTURAL else scrub(value) for key, value in log_data.items()}
