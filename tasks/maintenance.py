"""Periodic tasks driven by celery beat. Beat is only a clock: each claims its rows in the database."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict

from providers.base import Provider
from providers.registry import get_provider
from worker.celery_app import app
from worker.db import session_scope
from worker.policy.alerts import check_reconcile_backlog
from worker.policy.outbox import release_due as _release_due
from worker.policy.outbox import stale_queued
from worker.policy.reconcile import sweep
from worker.policy.transitions import utcnow
from worker.publish import broker_epoch, publish_dispatch
from worker.sealing import internal_task
from worker.settings import get_settings
from worker.task_names import CHECK_BACKLOG, RECONCILE_SWEEP, RELAY_OUTBOX, RELEASE_DUE

log = logging.getLogger(__name__)

#: How long one reconcile run may keep taking batches; below the beat period (30 s), so runs rarely overlap.
RECONCILE_BUDGET_SECONDS = 20.0
#: Hosts' clocks differ a little: a message updated this close after the epoch began is copied too (harmless).
EPOCH_CLOCK_MARGIN = dt.timedelta(seconds=1)


@internal_task(app, RELEASE_DUE)
def release_due() -> int:
    """Queue scheduled messages whose time has come."""
    return publish_dispatch(_release_due())


@internal_task(app, RELAY_OUTBOX)
def relay_outbox() -> int:
    """Publish again the dispatch of QUEUED messages the broker may have lost.

    Those queued before the broker's current data began (a Redis that lost its queues: the first publish after
    the loss dates it, see :func:`worker.publish.broker_epoch`), and any that waited ``outbox_stale`` seconds (a
    publish that failed); a backlog that is merely slow to drain, or was published after the loss, is not copied.
    """
    settings = get_settings()
    cutoff = utcnow() - dt.timedelta(seconds=settings.outbox_stale)
    epoch = broker_epoch(settings.broker_url)
    items = stale_queued(max(cutoff, epoch + EPOCH_CLOCK_MARGIN) if epoch else cutoff)
    if items:
        log.warning("outbox relay re-publishing %d queued messages", len(items))
    return publish_dispatch(items)


@internal_task(app, RECONCILE_SWEEP)
def reconcile_sweep() -> dict[str, int]:
    """Settle AMBIGUOUS and overdue SENT messages by asking their providers."""
    settings = get_settings()

    def providers_for(names: list[str]) -> list[Provider]:
        return [get_provider(name, settings) for name in names]

    counts, _ = sweep(settings, providers_for, budget_seconds=RECONCILE_BUDGET_SECONDS, on_resend=publish_dispatch)
    return asdict(counts)


@internal_task(app, CHECK_BACKLOG)
def check_backlog() -> int:
    """Raise a RECONCILE_BACKLOG alert when AMBIGUOUS messages wait longer than a quarter of their maximum age."""
    max_age = max(60, get_settings().reconcile_max_age // 4)
    with session_scope() as session:
        return check_reconcile_backlog(session, max_age_seconds=max_age)


# The campaign tick and chunk tasks live in their own module; importing it here registers them wherever the
# periodic tasks are (worker.celery_app's TASK_MODULES lists this module).
from tasks import campaigns as _campaigns  # noqa: E402,F401
