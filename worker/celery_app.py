"""The Celery application. Kept tiny: configuration lives in worker/celeryconfig.py."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from worker.celery_typed import receiver
from worker.celeryconfig import celery_config
from worker.sealing import connect as connect_sealing
from worker.settings import get_settings
from worker.undeliverable import AnswerUndeliverableJobs

TASK_MODULES = ["tasks.intake", "tasks.admin", "tasks.dispatch", "tasks.maintenance", "tasks.delivery_reports",
                "tasks.callbacks", "tasks.campaigns", "tasks.tendlc"]

log = logging.getLogger(__name__)
app = Celery("hexavox", include=TASK_MODULES)
app.conf.update(celery_config(get_settings()))


@receiver(signals.worker_process_init)
def _after_fork(**_: Any) -> None:
    """A forked pool child must not share its parent's database sockets."""
    from worker.db import dispose_engines

    dispose_engines()


@receiver(signals.celeryd_init)
def _on_worker_start(**_: Any) -> None:
    from worker.observability import configure_logging, init_sentry
    from worker.startup import check_at_start

    check_at_start(get_settings())  # a bad provider option stops the worker here, not at the first dispatch
    configure_logging()
    init_sentry(get_settings())


def _is_ours(name: object) -> bool:
    return isinstance(name, str) and name.startswith("hexavox.")


@receiver(signals.task_unknown)
def _answer_unknown_job(sender: Any = None, **kw: Any) -> None:
    """Answer a job under an unknown ``hexavox.*`` name (a contract version we do not run) with E814.

    Without this the caller gets Celery's ``NotRegistered``, which a service outside Python
    cannot read as an answer. The answer is the refusal the intake gives any refused request.
    Other unknown names keep Celery's default handling.
    """
    name, task_id = kw.get("name"), kw.get("id")
    if not (_is_ours(name) and isinstance(task_id, str)):
        return
    from celery import states

    from worker.runner import refuse_unknown_job

    app.backend.store_result(task_id, refuse_unknown_job(str(name), task_id), states.SUCCESS)


app.steps["consumer"].add(AnswerUndeliverableJobs)
connect_sealing(app)


def redelivered(task: Any) -> bool:
    """True when the broker gave this job back after a worker died holding it (see worker.policy.redeliveries)."""
    return bool((task.request.delivery_info or {}).get("redelivered"))


def reconfigure() -> None:
    """Re-read the settings into the app and drop pooled broker connections (tests switch databases per case)."""
    from kombu import pools

    app.conf.update(celery_config(get_settings()))
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()  # kombu keeps producer pools per connection URL, process-wide
