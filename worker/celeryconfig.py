"""Celery settings, built from :mod:`worker.settings`. Every reliability choice is deliberate:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged only after it
  finished, so a worker killed mid-task has its job redelivered instead of lost. The price is
  that a task can run twice; every task is written for that (state machine claims in the
  database). Redis has no delivery limit of its own, so the attempt caps live in PostgreSQL:
  dispatch in ``messages.dispatch_attempts``, intake and admin jobs in ``task_redeliveries``
  (counted only for copies the broker marks redelivered; see worker/policy/redeliveries.py).
* ``worker_prefetch_multiplier = 1``: a worker reserves one job per process, so a killed worker
  strands at most that many, and long sends do not hold short OTPs hostage.
* The visibility timeout (Redis redelivers an unacked task after it) is set in all three
  places Celery reads it and is always larger than the task time limit (checked at start-up),
  otherwise a slow task would run twice concurrently.
* JSON only, everywhere: pickle would let anyone who can write to the broker run code.
* Results are ignored except for intake jobs, whose answer is the request result; the
  database is the source of truth for message state.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from worker.file_broker import TRANSPORT_PATH
from worker.queues import ALL_QUEUES, TRANSACTIONAL, route_task
from worker.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings``."""
    transport_options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
    # Set every time, so reconfiguring a process away from the embedded broker forgets its transport.
    broker: dict[str, Any] = {"broker_transport": None}
    if settings.broker_url.startswith("filesystem"):
        control = settings.data_dir / "broker" / "control"
        for folder in (settings.broker_in_dir, settings.broker_processed_dir, control):
            folder.mkdir(parents=True, exist_ok=True)
        broker["broker_transport"] = TRANSPORT_PATH  # kombu's, but every message is published atomically
        transport_options.update(data_folder_in=str(settings.broker_in_dir),
                                 data_folder_out=str(settings.broker_in_dir), control_folder=str(control),
                                 processed_folder=str(settings.broker_processed_dir), store_processed=False)
    queue_arguments = _durable_amqp(settings.broker_url, transport_options)
    return broker | {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "visibility_timeout": settings.visibility_timeout,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 10.0,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(1, settings.task_time_limit - 5),
        "task_ignore_result": True,
        "result_expires": 7 * 24 * 3600,
        "result_extended": False,
        "task_default_queue": TRANSACTIONAL,
        # Declared, so a plain `celery -A worker worker` consumes every queue (-Q picks a subset); each is bound
        # to an exchange of its own name, exactly what Celery would create for a missing queue.
        "task_queues": tuple(Queue(name, Exchange(name), routing_key=name, queue_arguments=queue_arguments)
                             for name in ALL_QUEUES),
        "task_create_missing_queues": True,
        "task_routes": (route_task,),
        "worker_hijack_root_logger": False,
        # Loaded by every worker and beat at start: metrics, log context and Flower's masked events (signals only).
        "imports": ("worker.telemetry.celery_hooks",),
        # Task events cost three extra broker publishes per task; start workers with -E when Flower watches.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": _beat_schedule(),
        "database_table_names": {"task": "celery_taskmeta", "group": "celery_groupmeta"},
    }

def _durable_amqp(broker_url: str, transport_options: dict[str, Any]) -> dict[str, Any] | None:
    """On RabbitMQ: quorum queues (replicated, fsynced, with a delivery limit by policy) and publisher confirms.

    A publish returns only once the broker has the message, so a job or dispatch the caller was told about is
    on disk; Celery detects the quorum queues and uses per-consumer QoS and native delayed delivery for
    countdowns. A queue declared classic earlier must be deleted (drained) once before this declaration.
    """
    if not broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return None
    transport_options["confirm_publish"] = True
    return {"x-queue-type": "quorum"}


def _beat_schedule() -> dict[str, dict[str, Any]]:
    """Beat is only a clock: each periodic task claims its rows in the database, so two beats are harmless."""
    return {
        "release-due-scheduled": {"task": "hexavox.internal.release_due", "schedule": 10.0},
        "campaign-tick": {"task": "hexavox.internal.campaign_tick", "schedule": 5.0},
        "relay-outbox": {"task": "hexavox.internal.relay_outbox", "schedule": 15.0},
        "reconcile-sweep": {"task": "hexavox.internal.reconcile_sweep", "schedule": 30.0},
        "deliver-callbacks": {"task": "hexavox.internal.deliver_callbacks", "schedule": 10.0},
        "check-reconcile-backlog": {"task": "hexavox.internal.check_backlog", "schedule": 300.0},
        "tendlc-poll": {"task": "hexavox.internal.tendlc_poll", "schedule": 60.0},
    }

