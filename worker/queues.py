"""Named queues and where each task goes, so OTP never waits behind a campaign.

Publishers outside Python put intake jobs on the queue named here for their kind (the
README lists them); :func:`route_task` does the same for Python callers and for the work
the service enqueues itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ALL_QUEUES", "INTAKE_QUEUES", "INTERNAL_QUEUES", "route_task", "queue_for_message", "intake_queue",
           "is_internal_queue", "may_coalesce"]

OTP = "otp"
TRANSACTIONAL = "transactional"
BULK = "bulk"
VOICE = "voice"
EMAIL = "email"
ADMIN = "admin"
RECONCILE = "reconcile"
CALLBACKS = "callbacks"

#: Where other services publish intake and admin jobs (the published contract); nothing internal runs from them.
INTAKE_QUEUES: tuple[str, ...] = (OTP, TRANSACTIONAL, BULK, VOICE, EMAIL, ADMIN)
#: Dispatch of one message, per intake queue: ``dispatch.otp`` etc. Internal: only the service publishes there.
DISPATCH_PREFIX = "dispatch."
DISPATCH_QUEUES: tuple[str, ...] = tuple(DISPATCH_PREFIX + name for name in (OTP, TRANSACTIONAL, BULK, VOICE, EMAIL))
ALL_QUEUES: tuple[str, ...] = (*INTAKE_QUEUES, *DISPATCH_QUEUES, RECONCILE, CALLBACKS)

_BY_TYPE = {"OTP": OTP, "TXN": TRANSACTIONAL, "MKT": BULK, "TRANSACTIONAL": EMAIL, "MARKETING": BULK}


def queue_for_message(channel: str, message_type: str) -> str:
    """The queue for dispatching one message: OTP alone; marketing shares the bulk dispatch queue."""
    return DISPATCH_PREFIX + _intake_kind(channel, message_type)


#: Dispatch queues whose tasks may take waiting messages with their own (worker.policy.coalesce): never OTP's, whose
#: tasks stay one small message each, nor voice's (a call may need an agent rung just before it).
COALESCING_QUEUES: tuple[str, ...] = (DISPATCH_PREFIX + TRANSACTIONAL, DISPATCH_PREFIX + BULK)


def may_coalesce(queue: str | None) -> bool:
    """True for a dispatch task taken from a queue where a deep backlog is worked in batches; an in-process call
    (no queue) takes its own message alone."""
    return queue in COALESCING_QUEUES


def _intake_kind(channel: str, message_type: str) -> str:
    if message_type in {"MKT", "MARKETING"}:
        return BULK
    if channel == "VOICE":
        return VOICE
    if channel == "EMAIL":
        return EMAIL
    return _BY_TYPE.get(message_type, TRANSACTIONAL)


def is_internal_queue(name: str) -> bool:
    """True for the queues only the service publishes to (dispatch, reconcile, callbacks)."""
    return name in DISPATCH_QUEUES or name in (RECONCILE, CALLBACKS)


def intake_queue(task_name: str, payload: Mapping[str, Any] | None) -> str:
    """The queue for an intake job, from its task name and (for SMS) its type."""
    if ".sms." in task_name:
        # By type, whatever the form (to, or batch nodes: OTP takes one, TXN at most 100): an OTP never waits
        # behind bulk work. A list send is bulk work of any type (and must be MKT, which intake checks).
        kind = str((payload or {}).get("type", "")).upper()
        is_list = bool((payload or {}).get("listId")) and not (payload or {}).get("to") and "sms" not in (payload or {})
        return BULK if is_list else _BY_TYPE.get(kind, TRANSACTIONAL)
    if ".voice." in task_name:
        return VOICE
    if ".email." in task_name:
        return _intake_kind("EMAIL", str((payload or {}).get("type", "")).upper())
    if task_name.startswith(("hexavox.campaign.", "hexavox.list.")):
        return BULK
    return ADMIN


#: Where the service's own periodic and follow-up tasks run (dispatch names its queue per message).
INTERNAL_QUEUES = {
    "hexavox.internal.reconcile_sweep": RECONCILE,
    "hexavox.internal.relay_outbox": RECONCILE,
    "hexavox.internal.release_due": RECONCILE,
    "hexavox.internal.check_backlog": RECONCILE,
    "hexavox.internal.deliver_callbacks": CALLBACKS,
    "hexavox.internal.apply_reports": CALLBACKS,
    "hexavox.internal.campaign_tick": RECONCILE,
    "hexavox.internal.tendlc_poll": RECONCILE,
    "hexavox.internal.tendlc_updates": CALLBACKS,
    # Chunks are bulk work: they share the bulk dispatch queue's workers, never OTP's.
    "hexavox.internal.campaign_chunk": DISPATCH_PREFIX + BULK,
}


def route_task(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], options: Mapping[str, Any],
               task: Any = None, **_: Any) -> dict[str, str] | None:
    """Celery router: intake jobs by kind and type, internal tasks by name; an explicit queue option wins."""
    if name.startswith("hexavox.internal."):
        return {"queue": INTERNAL_QUEUES[name]} if name in INTERNAL_QUEUES else None
    payload = args[0] if args and isinstance(args[0], Mapping) else kwargs.get("payload")
    return {"queue": intake_queue(name, payload if isinstance(payload, Mapping) else None)}
