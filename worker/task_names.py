"""Every task name the service runs, in one place, the internal ones marked.

Intake and admin jobs are the published contract (:data:`worker.contract.JOBS`, versioned names that other services
publish). Internal tasks are the service's own follow-up and periodic work: only the service may publish them, so
they are sealed with its key (:mod:`worker.sealing`) and run only from internal queues.
"""

from __future__ import annotations

__all__ = ["APPLY_REPORTS", "CAMPAIGN_CHUNK", "CAMPAIGN_TICK",
           "CHECK_BACKLOG", "DELIVER_CALLBACKS", "DISPATCH", "DISPATCH_BATCH", "INTERNAL_TASKS", "RECONCILE_SWEEP",
           "RELAY_OUTBOX", "RELEASE_DUE", "TENDLC_POLL", "TENDLC_UPDATES", "is_internal"]

DISPATCH = "hexavox.internal.dispatch"
APPLY_REPORTS = "hexavox.internal.apply_reports"
DELIVER_CALLBACKS = "hexavox.internal.deliver_callbacks"
RELEASE_DUE = "hexavox.internal.release_due"
RELAY_OUTBOX = "hexavox.internal.relay_outbox"
RECONCILE_SWEEP = "hexavox.internal.reconcile_sweep"
CHECK_BACKLOG = "hexavox.internal.check_backlog"
#: Beat's clock for campaigns (claims due ones), and one chunk of one campaign (args: campaign id, cursor).
CAMPAIGN_TICK = "hexavox.internal.campaign_tick"
CAMPAIGN_CHUNK = "hexavox.internal.campaign_chunk"
#: Dispatch of a batch of campaign messages (args: message ids), on the message's dispatch queue.
DISPATCH_BATCH = "hexavox.internal.dispatch_batch"
#: Beat's 10DLC registration poll (submit, ask, apply), and the registrar webhook's decisions (args: updates).
TENDLC_POLL = "hexavox.internal.tendlc_poll"
TENDLC_UPDATES = "hexavox.internal.tendlc_updates"

INTERNAL_TASKS: frozenset[str] = frozenset({DISPATCH, APPLY_REPORTS, DELIVER_CALLBACKS, RELEASE_DUE, RELAY_OUTBOX,
                                            RECONCILE_SWEEP, CHECK_BACKLOG, CAMPAIGN_TICK, CAMPAIGN_CHUNK,
                                            DISPATCH_BATCH, TENDLC_POLL, TENDLC_UPDATES})
_INTERNAL_PREFIX = "hexavox.internal."


def is_internal(name: object) -> bool:
    """True for a name only the service may publish (every ``hexavox.internal.*`` name, known or not)."""
    return isinstance(name, str) and name.startswith(_INTERNAL_PREFIX)
