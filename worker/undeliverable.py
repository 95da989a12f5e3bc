"""Jobs the worker cannot hand to a task: answered under their id, logged without their bodies, never decoded.

Celery's own handlers for an unknown task name, a body it may not decode (pickle, or not JSON), a malformed message
and a message it cannot read at all log "the full contents of the message body": a job's phone numbers, texts and,
from an old client, its credentials. These replacements log the task name and id only, reject the message, and
answer a ``hexavox.*`` job in the result backend under its id with a catalogue code, as any refused request is
answered, so its sender can tell a refused job from a slow one:

* unknown name (a contract version we do not run): E814;
* a body that is not JSON: E876, without ever decoding it (a pickled body must never be loaded).

Other names keep Celery's bookkeeping (the NotRegistered result), minus the body in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps, signals, states
from celery.exceptions import NotRegistered

from worker.catalogue import Code
from worker.errors import Refusal

__all__ = ["AnswerUndeliverableJobs"]

log = logging.getLogger(__name__)


def _ours(name: object) -> bool:
    return isinstance(name, str) and name.startswith("hexavox.")


def _who(message: Any) -> tuple[str, str]:
    headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
    return str(headers.get("task") or "?")[:80], str(headers.get("id") or "?")[:40]


def _answer(consumer: Any, name: str, task_id: str, refusal: Refusal) -> None:
    """Store the refusal as the job's answer (recorded like any refused request; see worker.runner)."""
    from worker.runner import refuse_job

    consumer.app.backend.store_result(task_id, refuse_job(name, task_id, refusal), states.SUCCESS)


class AnswerUndeliverableJobs(bootsteps.Step):  # type: ignore[misc]  # Celery ships no types: its classes are Any
    """A consumer step replacing Celery's handlers for messages no task can take (see the module docstring)."""

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)

        def on_unknown_task(body: Any, message: Any, exc: Exception) -> None:
            name, task_id = _who(message)
            log.warning("no task is registered as %s; job %s rejected", name, task_id)
            message.reject_log_error(log, consumer.connection_errors)
            if _ours(name) and task_id != "?":
                signals.task_unknown.send(sender=consumer, message=message, exc=exc, name=name, id=task_id)
            elif task_id != "?":
                consumer.app.backend.mark_as_failure(task_id, NotRegistered(name))

        def on_invalid_task(body: Any, message: Any, exc: Exception) -> None:
            name, task_id = _who(message)
            log.error("job %s (%s) could not be read (%s: content type %.60r); rejected without decoding", task_id,
                      name, type(exc).__name__, getattr(message, "content_type", None))
            message.reject_log_error(log, consumer.connection_errors)
            if _ours(name) and task_id != "?":
                _answer(consumer, name, task_id, Refusal(
                    Code.UNDECODABLE_JOB, "only application/json jobs are run; this one was not decoded"))
            signals.task_rejected.send(sender=consumer, message=message, exc=exc)

        def on_decode_error(message: Any, exc: Exception) -> None:
            name, task_id = _who(message)
            log.error("job %s (%s) could not be decoded (%s); acknowledged and dropped", task_id, name,
                      type(exc).__name__)
            message.ack()
            if _ours(name) and task_id != "?":
                _answer(consumer, name, task_id, Refusal(Code.UNDECODABLE_JOB, "the job body could not be decoded"))

        def on_unknown_message(body: Any, message: Any) -> None:
            name, task_id = _who(message)
            log.warning("a message in no known task format (id %s) was rejected", task_id)
            message.reject_log_error(log, consumer.connection_errors)
            signals.task_rejected.send(sender=consumer, message=message, exc=None)

        consumer.on_unknown_task = on_unknown_task
        consumer.on_invalid_task = on_invalid_task
        consumer.on_decode_error = on_decode_error
        consumer.on_unknown_message = on_unknown_message
