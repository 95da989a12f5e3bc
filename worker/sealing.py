"""Where the Celery app meets :mod:`worker.envelope`: internal tasks sealed by the service, jobs checked per door.

* Every internal task the service publishes (dispatch, reconcile, reports, callbacks; see :mod:`worker.task_names`)
  is sealed on its way out by a ``before_task_publish`` handler, with the service's own key. Beat, the webhook
  receiver, the API and the workers all publish through the same app, so none can forget it.
* An internal task runs only when its seal checks out and it arrived on an internal queue
  (:func:`internal_task`); anything else is logged (name and id only) and dropped. A tenant who can publish on an
  intake queue therefore cannot move another tenant's message or opt a number out.
* An intake or admin job runs only from an intake queue, and its caller is the tenant key that signed its envelope
  (:func:`intake_authenticator`), checked in the job's own transaction by the runner.

A task called in-process (directly, or ``apply()`` in tests) did not cross the broker and is not checked.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery, Task, signals

from worker.envelope import HEADER, SERVICE_KEY_ID, EnvelopeError, check, seal, signing_key
from worker.policy.auth import Authenticator, by_envelope
from worker.queues import INTAKE_QUEUES, is_internal_queue
from worker.settings import Settings, get_settings
from worker.task_names import INTERNAL_TASKS, is_internal

__all__ = ["connect", "in_process", "intake_authenticator", "internal_task", "service_key", "wrong_queue"]

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def service_key(settings: Settings) -> bytes:
    """The key internal tasks are sealed with: HEXAVOX_SERVICE_KEY, else (development) one kept in the data dir."""
    if settings.service_key:
        return signing_key(settings.service_key)
    return signing_key(_development_key(settings.data_dir))


@lru_cache(maxsize=4)
def _development_key(data_dir: Path) -> str:
    """A random key shared by this machine's processes through a file only its owner can read."""
    path = data_dir / "service.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            with open(path, "x", opener=lambda p, flags: __import__("os").open(p, flags, 0o600)) as handle:
                handle.write(key)
            return key
        except FileExistsError:  # another process of this machine wrote it first
            return path.read_text().strip()


def _seal_internal(sender: str | None = None, body: Any = None, headers: dict[str, Any] | None = None,
                   **_: Any) -> None:
    """``before_task_publish``: sign every internal task (and each retry of one) with the service key."""
    if headers is None or not is_internal(sender or headers.get("task")):
        return
    args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) and len(body) >= 2 else ((), {})
    headers[HEADER] = seal(SERVICE_KEY_ID, service_key(get_settings()), str(headers.get("task")),
                           str(headers.get("id")), args, kwargs, now=time.time())


def connect(app: Celery) -> None:
    """Wire the seal into ``app``'s publishing (once per process)."""
    signals.before_task_publish.connect(_seal_internal, weak=False, dispatch_uid="hexavox-seal-internal")
    del app  # the signal is process-wide; the argument documents which app it is for


def in_process(task: Task) -> bool:
    """True when the task did not come through the broker (called directly, or eagerly)."""
    request = task.request
    return bool(request.called_directly or request.is_eager)


def wrong_queue(task: Task) -> str | None:
    """Why this job may not run from the queue it came from, or None. Intake queues run intake jobs only."""
    queue = str((task.request.delivery_info or {}).get("routing_key") or "")
    internal = is_internal(task.name)
    if internal and not is_internal_queue(queue):
        return f"internal task {task.name} arrived on the intake queue {queue!r}"
    if not internal and queue not in INTAKE_QUEUES:
        return f"job {task.name} arrived on the internal queue {queue!r}"
    return None


def internal_task(app: Celery, name: str, **options: Any) -> Callable[[F], Task]:
    """Register an internal task that runs only when sealed by the service and taken from an internal queue.

    The decorated function gets the task as its first argument when ``bind=True`` is among ``options``.
    """
    assert name in INTERNAL_TASKS, f"{name} must be listed in worker.task_names.INTERNAL_TASKS"
    bound = bool(options.pop("bind", False))

    def decorate(fn: F) -> Task:
        def run(self: Task, *args: Any, **kwargs: Any) -> Any:
            if not in_process(self):
                problem = wrong_queue(self) or _seal_problem(self, args, kwargs)
                if problem:
                    log.error("refused to run %s (id %.40s): %s", self.name, self.request.id, problem)
                    return None
            return fn(self, *args, **kwargs) if bound else fn(*args, **kwargs)

        run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        run.__module__ = fn.__module__
        task: Task = app.task(name=name, bind=True, **options)(run)
        return task

    return decorate


def _seal_problem(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    settings = get_settings()
    key = service_key(settings)
    try:
        check(task.request.get(HEADER), task.name, str(task.request.id), args, kwargs,
              lambda kid: key if kid == SERVICE_KEY_ID else None, now=time.time(),
              max_age=settings.envelope_max_age)
    except EnvelopeError as err:
        return err.reason
    return None


def intake_authenticator(task: Task, payload: Any) -> Authenticator | None:
    """The caller of an intake or admin job: the tenant key that signed it. None for an in-process call."""
    if in_process(task):
        return None
    return by_envelope(task.request.get(HEADER), task.name, str(task.request.id), [payload], task.request.kwargs or {},
                       max_age=get_settings().envelope_max_age)
