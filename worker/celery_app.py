"""The Celery application. Kept tiny: configuration lives in worker/celeryconfig.py."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from worker.celeryconfig import celery_config
from worker.settings import get_settings

TASK_MODULES = ["tasks.intake", "tasks.admin", "tasks.dispatch", "tasks.maintenance", "tasks.delivery_reports",
                "tasks.callbacks", "tasks.reports"]

app = Celery("hexavox", include=TASK_MODULES)
app.conf.update(celery_config(get_settings()))


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A forked pool child must not share its parent's database sockets."""
    from worker.db import dispose_engines

    dispose_engines()


@signals.celeryd_init.connect
def _on_worker_start(**_: Any) -> None:
    from worker.observability import configure_logging, init_sentry

    configure_logging()
    init_sentry(get_settings())


def reconfigure() -> None:
    """Re-read the settings into the app and drop pooled broker connections (tests switch databases per case)."""
    from kombu import pools

    app.conf.update(celery_config(get_settings()))
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()  # kombu keeps producer pools per connection URL, process-wide
