"""A small client for other Python services: enqueue jobs by task name and read their results.

It needs only the broker (and the result backend to read answers): no database, no worker
code. The request id is chosen here, before publishing, so the caller has it at once. A
service in another language publishes the same JSON object as the task's only argument to
the queue :func:`worker.queues.intake_queue` names, with the request id as the task id.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from worker.celeryconfig import celery_config
from worker.envelope import HEADER, seal, signing_key
from worker.queues import intake_queue
from worker.settings import Settings, load_settings

__all__ = ["HexavoxClient"]

log = logging.getLogger(__name__)


class HexavoxClient:
    """Enqueue intake jobs signed with this tenant's key; read answers back by request id.

    The secret never leaves this process: each job carries a signed envelope (worker/envelope.py) instead.
    """

    def __init__(self, key_id: str, secret: str, settings: Settings | None = None) -> None:
        self._key_id, self._key = key_id, signing_key(secret)
        self._app = Celery("hexavox-client", set_as_current=False)
        self._app.conf.update(celery_config(settings or load_settings()))

    def submit(self, task_name: str, payload: dict[str, Any], *, idempotency_key: str | None = None) -> str:
        """Publish one job; returns its request id."""
        request_id = str(uuid.uuid4())
        self.resubmit(request_id, task_name, payload, idempotency_key=idempotency_key)
        return request_id

    def send_sms(self, **payload: Any) -> str:
        return self.submit("hexavox.sms.send.v1", payload)

    def send_voice(self, **payload: Any) -> str:
        return self.submit("hexavox.voice.send.v1", payload)

    def send_email(self, **payload: Any) -> str:
        return self.submit("hexavox.email.send.v1", payload)

    def result(self, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The intake answer of ``request_id`` (waits up to ``timeout`` seconds; celery's TimeoutError if none)."""
        answer: dict[str, Any] = AsyncResult(request_id, app=self._app).get(timeout=timeout, propagate=True)
        return answer

    def resubmit(self, request_id: str, task_name: str, payload: dict[str, Any], *,
                 idempotency_key: str | None = None) -> None:
        """Publish a job under ``request_id``, freshly signed: a first time, or again (see :meth:`answer`)."""
        if "auth" in payload:
            raise ValueError("credentials never travel on the broker: the client signs each job, drop 'auth'")
        body = dict(payload)
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        envelope = seal(self._key_id, self._key, task_name, request_id, [body], {}, now=time.time())
        self._app.send_task(task_name, args=[body], task_id=request_id, queue=intake_queue(task_name, payload),
                            headers={HEADER: envelope}, argsrepr=f"({task_name} job)", kwargsrepr="{}")

    def answer(self, request_id: str, task_name: str, payload: dict[str, Any], *, idempotency_key: str | None = None,
               timeout: float = 60.0, attempts: int = 5) -> dict[str, Any]:
        """The answer of a submitted job, publishing it again under the same request id while none comes.

        A broker that restarts without persistence (or loses its last second with AOF ``everysec``) loses jobs
        nobody has taken yet; nothing then answers them. The service answers a request id once: a copy of a job
        it already ran returns the first answer and sends nothing again, so re-publishing after ``timeout``
        seconds without an answer is safe. A job that ended without an answer (its worker hit the task time
        limit) is published again too, its failed state forgotten first; a publish that fails (the broker is
        down) is tried again after the next wait. Raises the last error after ``attempts`` waits.
        """
        from celery.exceptions import TimeoutError as NoAnswer

        last: Exception = NoAnswer(request_id)
        for attempt in range(attempts):
            if attempt:
                self._republish(request_id, task_name, payload, idempotency_key)
            try:
                return self.result(request_id, timeout=timeout)
            except NoAnswer as err:
                last = err
            except Exception as err:  # the task failed without an answer, or the result backend is down
                last = err
                with contextlib.suppress(Exception):
                    AsyncResult(request_id, app=self._app).forget()
                time.sleep(timeout)  # a round lasts ``timeout`` seconds either way: a restart gets its time
        raise last

    def _republish(self, request_id: str, task_name: str, payload: dict[str, Any], idempotency_key: str | None) -> None:
        try:
            self.resubmit(request_id, task_name, payload, idempotency_key=idempotency_key)
        except Exception as err:  # broker unreachable: the next round publishes again
            log.warning("publishing request %s again failed (%s); trying after the next wait", request_id,
                        type(err).__name__)

    def close(self) -> None:
        self._app.close()
