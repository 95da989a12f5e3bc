"""Admin tasks: merchants, consents, contact lists, billing. Thin wrappers around worker.policy.admin."""

from __future__ import annotations

from typing import Any

from celery import Task

from worker.celery_app import app
from worker.contract import JOBS
from worker.runner import run_admin_job_by_name

ADMIN_JOBS = [name for name in JOBS if not name.startswith(("hexavox.sms.", "hexavox.voice.", "hexavox.email."))]


def _make(name: str) -> Task:
    def run(self: Task, payload: Any) -> dict[str, Any]:
        return run_admin_job_by_name(self.name, payload, str(self.request.id))

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    run.__doc__ = JOBS[name].__doc__
    task: Task = app.task(name=name, bind=True, ignore_result=False)(run)
    return task


TASKS = {name: _make(name) for name in ADMIN_JOBS}
