"""Intake tasks: the published, versioned job names. Thin: parse, run policy, publish, answer."""

from __future__ import annotations

from typing import Any

from celery import Task

from worker.catalogue import Code
from worker.celery_app import app, redelivered
from worker.celery_typed import celery_task
from worker.errors import Refusal
from worker.inline_dispatch import dispatch_inline
from worker.policy.dispatch import crash_if
from worker.publish import publish_dispatch
from worker.runner import guarded, refuse_job, run_send_job
from worker.sealing import in_process, intake_authenticator, wrong_queue
from worker.sending import provider_sender
from worker.settings import get_settings
from worker.urgency import URGENT_QUEUES, urgent


def _send(task: Task, payload: Any) -> dict[str, Any]:
    """Run a send job for the tenant key that signed it; dispatch once the intake committed.

    One OTP or TXN message is sent by this task itself (:mod:`worker.inline_dispatch`); the rest is published.
    """
    if not in_process(task) and (problem := wrong_queue(task)):
        return refuse_job(task.name, str(task.request.id), Refusal(Code.UNSUPPORTED_JOB, problem))

    def run() -> dict[str, Any]:
        settings = get_settings()
        crash_if(settings, "during_intake")
        with urgent(settings, active=_queue(task) in URGENT_QUEUES):  # bulk work steps aside meanwhile
            outcome = run_send_job(task.name, payload, str(task.request.id), intake_authenticator(task, payload))
            crash_if(settings, "after_intake_commit")
            left = dispatch_inline(outcome.result, outcome.to_dispatch, settings, lambda: provider_sender(settings),
                                   redelivered=redelivered(task))
        publish_dispatch(left)
        return outcome.result

    return guarded(task.name, str(task.request.id), redelivered(task), run)


def _queue(task: Task) -> str:
    return str((task.request.delivery_info or {}).get("routing_key") or "")


@celery_task(app, "hexavox.sms.send.v1", bind=True, ignore_result=False)
def send_sms(self: Task, payload: Any) -> dict[str, Any]:
    """Send SMS to one or more numbers, a list, or batch nodes."""
    return _send(self, payload)


@celery_task(app, "hexavox.voice.send.v1", bind=True, ignore_result=False)
def send_voice(self: Task, payload: Any) -> dict[str, Any]:
    """Place one text-to-speech call."""
    return _send(self, payload)


@celery_task(app, "hexavox.email.send.v1", bind=True, ignore_result=False)
def send_email(self: Task, payload: Any) -> dict[str, Any]:
    """Send one email."""
    return _send(self, payload)
