"""What a worker reports to Flower (task events) carries no recipient, text, code or secret.

Flower shows each task's arguments, result, exception and traceback exactly as the worker's events carry
them. The worker's event dispatcher is replaced by :class:`ScrubbingDispatcher`, which masks those fields
before they are published, so nothing needs to be trusted downstream (Flower, its persistent state file, any
other event consumer):

* ``args``, ``kwargs`` and ``result`` are Python reprs: parsed back as literals, sensitive keys filtered and
  other strings masked by :func:`worker.pii.scrub`; a repr that is not a literal (cut short, or an object) is
  masked as text when it quotes nothing, and withheld when it does (a cut-off dict could still hold a body).
  A result keeps its ``messages`` (ids, states, codes) with recipients and contacts masked, not filtered:
  that is what an operator looks a request up for.
* ``exception`` and ``traceback`` are text: SQLAlchemy's ``[parameters: ...]`` section (the row's values) is
  withheld and the rest masked by :func:`worker.pii.scrub_text`.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Final

from celery.events.dispatcher import EventDispatcher

from worker.pii import is_sensitive_key, scrub, scrub_text
from worker.validation.masking import mask_contact

__all__ = ["ScrubbingDispatcher", "install", "scrub_event_fields", "scrub_repr", "scrub_error_text"]

WITHHELD: Final = "[withheld]"
_REPR_FIELDS: Final = frozenset({"args", "kwargs", "result"})
_TEXT_FIELDS: Final = frozenset({"exception", "traceback"})
#: Longer reprs are not parsed (a literal_eval of a huge string costs memory); they are withheld or masked.
_MAX_PARSE: Final = 16_384
_MAX_SHOWN: Final = 1024
_SQL_PARAMETERS: Final = re.compile(r"\[parameters: .*?\](?=\s*(?:\(Background|\n|$))", re.DOTALL)


_MASKED_KEYS: Final = frozenset({"to", "contact"})
_CATALOGUE_CODE: Final = re.compile(r"E\d{3}")
_LISTS_KEPT: Final = frozenset({"messages", "results"})


def _scrub_answer(value: Any, depth: int = 0) -> Any:
    """An answer with message rows kept and recipients masked; everything else as :func:`worker.pii.scrub` does."""
    if not isinstance(value, dict) or depth > 4:
        return scrub(value)
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if key in _MASKED_KEYS and isinstance(item, str):
            out[key] = item if "*" in item else mask_contact(item)
        elif key in _LISTS_KEPT and isinstance(item, list):
            out[key] = [_scrub_answer(row, depth + 1) for row in item]
        elif key == "code" and isinstance(item, str) and _CATALOGUE_CODE.fullmatch(item):
            out[key] = item  # a catalogue code, not a one-time code
        elif isinstance(item, dict) and not is_sensitive_key(key):
            out[key] = _scrub_answer(item, depth + 1)
        else:
            out[key] = scrub({key: item})[key]
    return out


def scrub_repr(text: str, *, answer: bool = False) -> str:
    """A repr shown by Flower, with personal data filtered (see the module notes); ``answer`` for results."""
    if not text:
        return text
    try:
        if len(text) > _MAX_PARSE:
            raise ValueError("too long to parse")
        value = ast.literal_eval(text)
    except Exception:  # not a literal: SyntaxError, ValueError, RecursionError, MemoryError...
        return WITHHELD if ("'" in text or '"' in text) else scrub_text(text)[:_MAX_SHOWN]
    shown = repr(_scrub_answer(value) if answer else scrub(value))
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 3] + "..."


def scrub_error_text(text: str) -> str:
    """An exception or traceback without SQL parameters, phone numbers, emails or code-like digit runs."""
    return scrub_text(_SQL_PARAMETERS.sub("[parameters: withheld]", text)) if text else text


def scrub_event_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` of one event with the task's arguments, result and errors masked."""
    out = dict(fields)
    for key, value in fields.items():
        if key in _REPR_FIELDS:
            out[key] = scrub_repr(value if isinstance(value, str) else repr(value), answer=key == "result")
        elif key in _TEXT_FIELDS and isinstance(value, str):
            out[key] = scrub_error_text(value)
    return out


class ScrubbingDispatcher(EventDispatcher):  # type: ignore[misc]  # Celery ships no types: its classes are Any
    """Celery's event dispatcher, masking task fields before anything is buffered or published."""

    def send(self, type: str, *args: Any, **fields: Any) -> Any:  # noqa: A002 - Celery's own signature
        return super().send(type, *args, **scrub_event_fields(fields))


def install(app: Any) -> None:
    """Make ``app``'s workers publish events through :class:`ScrubbingDispatcher` (call before they start)."""
    app.events.dispatcher_cls = f"{__name__}:ScrubbingDispatcher"
    app.events.__dict__.pop("Dispatcher", None)  # a dispatcher class already built is dropped
