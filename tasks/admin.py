"""Admin tasks: merchants, consents, contact lists, billing. Thin wrappers around worker.policy.admin."""

from __future__ import annotations

from typing import Any

from celery import Task

from worker.catalogue import Code
from worker.celery_app import app, redelivered
from worker.contract import JOBS
from worker.errors import Refusal
from worker.runner import guarded, refuse_job, run_admin_job_by_name
from worker.sealing import in_process, intake_authenticator, wrong_queue

ADMIN_JOBS = [name for name in JOBS if not name.startswith(("hexavox.sms.", "hexavox.voice.", "hexavox.email."))]


def _make(name: str) -> Task:
    def run(self: Task, payload: Any) -> dict[str, Any]:
        request_id = str(self.request.id)
        if not in_process(self) and (problem := wrong_queue(self)):
            return refuse_job(self.name, request_id, Refusal(Code.UNSUPPORTED_JOB, problem))
        who = intake_authenticator(self, payload)
        return guarded(self.name, request_id, redelivered(self),
                       lambda: run_admin_job_by_name(self.name, payload, request_id, who))

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    run.__doc__ = JOBS[name].__doc__
    task: Task = app.task(name=name, bind=True, ignore_result=False)(run)
    return task


TASKS = {name: _make(name) for name in ADMIN_JOBS}
