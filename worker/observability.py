"""Logging and Sentry set up so that no recipient, message text, code or secret leaves the process.

Where personal data would otherwise leak (docs/reliability.md S5) and what closes each hole:

* **Log records.** :class:`PiiFilter` formats every record (``msg % args``), runs the result
  through :func:`worker.pii.scrub_text` and stores it back with no args; tracebacks and stack
  info are scrubbed too. :func:`configure_logging` puts it on the root handlers *and* on the
  Celery loggers themselves: ``celery.app.trace`` logs every success with the task's return
  value and every failure with the exception text; a filter on the logger runs before any
  handler, including the one Sentry's logging integration hooks in. Celery's worker replaces
  the root handlers when it starts (``worker_hijack_root_logger``), so the filter is installed
  again from the ``after_setup_logger`` / ``after_setup_task_logger`` signals. Our tasks return
  only ids and catalogue codes anyway, so the success line carries nothing personal even
  unscrubbed; the filter is the second line of defence.
* **Sentry.** ``send_default_pii=False`` (the Celery integration then hides task args),
  ``include_local_variables=False`` (the SDK default is *True*: frame locals such as ``to``,
  ``body``, ``code`` would be sent), no request bodies, and ``before_send`` /
  ``before_breadcrumb`` hooks that scrub the whole event: the SDK's own ``EventScrubber`` only
  knows password/token/cookie-style keys and never looks inside message strings.
* **Flower** shows task arguments unless the caller sets ``argsrepr``: publish with
  ``argsrepr=task_argsrepr(payload)`` so it only ever shows the scrubbed form.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO, cast

from worker.pii import scrub, scrub_text

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

__all__ = ["PiiFilter", "configure_logging", "init_sentry", "scrub_event", "task_argsrepr"]

#: Loggers that get the filter on the logger itself (records they emit are scrubbed before any handler).
CELERY_LOGGERS: Final = (
    "celery",
    "celery.app.trace",
    "celery.worker.request",
    "celery.worker.strategy",
    "celery.worker.consumer",
    "celery.task",
    "celery.redirected",
    "celery.beat",
    "kombu",
)

_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s"

#: Keys of a Sentry event that are identifiers, timestamps, code locations or SDK metadata: copied
#: untouched wherever they appear (scrubbing them would mangle hex ids, dates and versions).
_SENTRY_STRUCTURAL: Final = frozenset(
    {
        "event_id", "timestamp", "start_timestamp", "level", "logger", "platform", "release", "dist",
        "environment", "server_name", "sdk", "modules", "fingerprint", "type", "module", "function",
        "filename", "abs_path", "lineno", "colno", "in_app", "package", "instruction_addr", "mechanism",
        "category", "trace_id", "span_id", "parent_span_id", "op", "status", "origin", "sampled",
        "transaction", "transaction_info", "debug_meta", "_meta", "measurements", "thread_id",
        "check_in_id", "monitor_slug", "same_process_as_parent",
    }
)

#: Longest ``argsrepr`` handed to Celery (Flower shows it; a task needs only enough to be recognised).
_MAX_ARGSREPR: Final = 256


class PiiFilter(logging.Filter):
    """Replaces a record's message with its formatted, scrubbed text; never drops a record, never raises."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string or a failing __str__: keep what we can
                message = f"{record.msg!s} {record.args!r}"
            record.msg = scrub_text(message)
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = scrub_text(record.exc_text)
            if record.stack_info:
                record.stack_info = scrub_text(record.stack_info)
        except Exception as err:  # a log call must never fail because of the filter
            record.msg = f"[log record withheld: PiiFilter failed with {type(err).__name__}]"
            record.args = None
            record.exc_text = None
            record.stack_info = None
        return True


def _install(filterer: logging.Filterer) -> None:
    if not any(isinstance(f, PiiFilter) for f in filterer.filters):
        filterer.addFilter(PiiFilter())


def _install_everywhere(*loggers: logging.Logger) -> None:
    from worker.telemetry.logs import ContextFilter

    root = logging.getLogger()
    for logger in (root, *loggers, *(logging.getLogger(name) for name in CELERY_LOGGERS)):
        _install(logger)
        for handler in logger.handlers:
            _install(handler)
            if not any(isinstance(f, ContextFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())


def _on_celery_logging_setup(logger: logging.Logger | None = None, **_: Any) -> None:
    _install_everywhere(*([logger] if logger is not None else []))


def _formatter(fmt: str) -> logging.Formatter:
    """Text lines, or JSON lines (``HEXAVOX_LOG_FORMAT=json``) with the task context and scrubbed extras."""
    if fmt == "json":
        from worker.telemetry.logs import JsonLines

        return JsonLines()
    return logging.Formatter(_FORMAT)


def _log_format() -> str:
    from worker.settings import get_settings

    return get_settings().log_format


class _ServiceHandler(logging.StreamHandler[TextIO]):
    """The stderr handler :func:`configure_logging` made, told apart from handlers others installed."""


def configure_logging(level: str = "INFO", fmt: str | None = None) -> None:
    """Give the root logger a handler (if it has none) and the level; install :class:`PiiFilter` everywhere.

    ``fmt`` is 'text' or 'json' (default: ``HEXAVOX_LOG_FORMAT``); it applies to the handler made here.
    Safe to call more than once. Also hooks Celery's logging set-up so the filter survives the
    worker replacing the root handlers.
    """
    from celery import signals

    root = logging.getLogger()
    ours: list[logging.Handler] = [h for h in root.handlers if isinstance(h, _ServiceHandler)]
    if not root.handlers:
        handler: logging.Handler = _ServiceHandler()
        root.addHandler(handler)
        ours = [handler]
    for handler in ours:
        handler.setFormatter(_formatter(fmt or _log_format()))
    root.setLevel(level.upper())
    _install_everywhere()
    signals.after_setup_logger.connect(_on_celery_logging_setup, weak=False, dispatch_uid="hexavox-pii-root")
    signals.after_setup_task_logger.connect(_on_celery_logging_setup, weak=False, dispatch_uid="hexavox-pii-task")


def _scrub_message(value: Any) -> Any:
    """A Sentry ``message``/``logentry`` interface: the texts are scrubbed, not filtered."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: scrub_text(item) if key in {"message", "formatted"} and isinstance(item, str) else scrub(item)
            for key, item in value.items()
        }
    return scrub(value)


def _scrub_tree(value: Any) -> Any:
    return scrub(value, keep=_SENTRY_STRUCTURAL)


def _scrub_breadcrumb(crumb: Mapping[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = {}
    for key, value in crumb.items():
        if key in _SENTRY_STRUCTURAL:
            scrubbed[key] = value
        elif key == "message":
            scrubbed[key] = _scrub_message(value)
        else:
            scrubbed[key] = _scrub_tree(value)
    return scrubbed


def scrub_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Sentry event with every part that can hold personal data scrubbed.

    Messages and log entries keep their text with phones, emails and codes masked; exception
    values, source context lines, frame variables, extra, contexts, tags, user, request and
    breadcrumbs go through :func:`worker.pii.scrub` (sensitive keys filtered, strings masked);
    ids, timestamps, code locations and SDK metadata are kept as they are.
    """
    scrubbed: dict[str, Any] = {}
    for key, value in event.items():
        if key in _SENTRY_STRUCTURAL:
            scrubbed[key] = value
        elif key in {"message", "logentry"}:
            scrubbed[key] = _scrub_message(value)
        elif key == "breadcrumbs" and isinstance(value, Mapping):
            scrubbed[key] = {
                k: [_scrub_breadcrumb(c) if isinstance(c, Mapping) else _scrub_tree(c) for c in v]
                if k == "values" and isinstance(v, list) else _scrub_tree(v)
                for k, v in value.items()
            }
        elif key == "spans" and isinstance(value, list):
            scrubbed[key] = [_scrub_tree(span) for span in value]
        else:
            scrubbed[key] = _scrub_tree(value)
    return scrubbed


def _before_send(event: Event, hint: Hint) -> Event | None:
    return cast("Event", scrub_event(event))


def _before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    return _scrub_breadcrumb(crumb)


class SentrySettings(Protocol):
    """What :func:`init_sentry` needs; ``release`` and ``sentry_traces_sample_rate`` are read when present."""

    @property
    def sentry_dsn(self) -> str: ...

    @property
    def environment(self) -> str: ...


def init_sentry(settings: SentrySettings, *, transport: Transport | type[Transport] | None = None) -> bool:
    """Start Sentry with PII off and the scrubbing hooks; False (and nothing started) without a DSN.

    ``transport`` is for tests: a :class:`sentry_sdk.transport.Transport` that records envelopes.
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    options: dict[str, Any] = {
        "dsn": settings.sentry_dsn,
        "environment": settings.environment,
        "release": getattr(settings, "release", "") or None,
        "traces_sample_rate": float(getattr(settings, "sentry_traces_sample_rate", 0.0)),
        "send_default_pii": False,
        "include_local_variables": False,
        "max_request_body_size": "never",
        "integrations": [CeleryIntegration(monitor_beat_tasks=False, propagate_traces=True)],
        "before_send": _before_send,
        "before_send_transaction": _before_send,
        "before_breadcrumb": _before_breadcrumb,
        "transport": transport,
    }
    with warnings.catch_warnings():
        # sentry-sdk 2.7x deprecates send_default_pii in favour of `data_collection`. False still maps to
        # the most restrictive collection *and* keeps the SDK's own EventScrubber, which an explicit
        # `data_collection` switches off; older 2.x releases do not know `data_collection` at all.
        warnings.filterwarnings("ignore", message=".*send_default_pii.*", category=DeprecationWarning)
        sentry_sdk.init(**options)
    return True


def task_argsrepr(payload: Mapping[str, Any]) -> str:
    """A short, scrubbed repr of a task's single payload argument, for ``apply_async(argsrepr=...)``.

    Flower and the worker's "received" log show this instead of the raw arguments, so a
    recipient, message text or code never appears there: ``({'to': '[Filtered]', 'type': 'OTP'},)``.
    """
    text = repr((scrub(dict(payload)),))
    return text if len(text) <= _MAX_ARGSREPR else text[: _MAX_ARGSREPR - 3] + "..."
