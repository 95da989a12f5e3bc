"""A small client for other Python services: enqueue jobs by task name and read their results.

It needs only the broker (and the result backend to read answers): no database, no worker
code. The request id is chosen here, before publishing, so the caller has it at once. A
service in another language publishes the same JSON object as the task's only argument to
the queue :func:`worker.queues.intake_queue` names, with the request id as the task id.
"""

from __future__ import annotations

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
        if "auth" in payload:
            raise ValueError("credentials never travel on the broker: the client signs each job, drop 'auth'")
        request_id = str(uuid.uuid4())
        body = dict(payload)
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        envelope = seal(self._key_id, self._key, task_name, request_id, [body], {}, now=time.time())
        self._app.send_task(task_name, args=[body], task_id=request_id, queue=intake_queue(task_name, payload),
                            headers={HEADER: envelope}, argsrepr=f"({task_name} job)", kwargsrepr="{}")
        return request_id

    def send_sms(self, **payload: Any) -> str:
        return self.submit("hexavox.sms.send.v1", payload)

    def send_voice(self, **payload: Any) -> str:
        return self.submit("hexavox.voice.send.v1", payload)

    def send_email(self, **payload: Any) -> str:
        return self.submit("hexavox.email.send.v1", payload)

    def result(self, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The intake answer of ``request_id`` (waits up to ``timeout`` seconds)."""
        answer: dict[str, Any] = AsyncResult(request_id, app=self._app).get(timeout=timeout, propagate=True)
        return answer

    def close(self) -> None:
        self._app.close()
