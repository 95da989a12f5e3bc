"""Celery's two decorators (``Signal.connect`` and ``Celery.task``) as typed functions.

Celery ships no type information, so under ``mypy --strict`` its decorators would make every decorated
function untyped. These keep a signal receiver's own signature (it can still be called and checked like any
function) and state plainly that a registered task is a Celery task object, which is as much as Celery says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery, Task

__all__ = ["celery_task", "receiver"]

F = TypeVar("F", bound=Callable[..., Any])


def receiver(signal: Any, **options: Any) -> Callable[[F], F]:
    """Connect the decorated function to a ``celery.signals`` signal (``weak``, ``dispatch_uid``...); return it."""

    def connect(fn: F) -> F:
        signal.connect(**options)(fn)
        return fn

    return connect


def celery_task(app: Celery, name: str, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """Register the decorated function as ``app``'s task ``name`` (``bind``, ``ignore_result``... as Celery's)."""

    def register(fn: Callable[..., Any]) -> Task:
        registered: Task = app.task(name=name, **options)(fn)
        return registered

    return register
