"""The dispatch task: one message through its providers, at most once, settling ambiguity via reconcile."""

from __future__ import annotations

import random

from celery import Task

from worker.celery_app import app
from worker.policy.dispatch import DispatchStep, dispatch_message, give_up_unavailable
from worker.sending import provider_sender
from worker.settings import get_settings

MAX_UNAVAILABLE_RETRIES = 3


@app.task(name="hexavox.internal.dispatch", bind=True, max_retries=MAX_UNAVAILABLE_RETRIES)
def dispatch(self: Task, message_id: str) -> str:
    """Retries only when every provider was unavailable (nothing left our side); never on ambiguity."""
    settings = get_settings()
    step = dispatch_message(message_id, settings, provider_sender(settings))
    if step == DispatchStep.RETRY:
        if self.request.retries >= MAX_UNAVAILABLE_RETRIES:
            give_up_unavailable(message_id)
            return DispatchStep.FAILED.value
        raise self.retry(countdown=min(60.0, 2.0 ** self.request.retries + random.random()))
    return step.value
