"""Run one intake job end to end against the database, whatever happens.

Every job ends accepted or refused with a code: refusals are recorded under the request id,
deadlocks and serialisation failures are retried, and an unexpected error is reported (to
Sentry through logging) and recorded as E103 so the sender knows to send it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.admin import run_admin_job
from worker.policy.auth import Authenticator, Principal, by_secret
from worker.policy.idempotency import begin_request, finish_request, payload_digest
from worker.policy.intake import IntakeOutcome, accept_send, record_refused_request, resolve_caller
from worker.policy.jobs import parse_job
from worker.policy.redeliveries import count_redelivery, forget_redeliveries
from worker.policy.transitions import utcnow
from worker.settings import get_settings

__all__ = ["run_send_job", "run_admin_job_by_name", "refuse_unknown_job", "refuse_job", "guarded", "by_secret"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_ATTEMPTS = 10


def _retrying(work: Callable[[Session], T]) -> T:
    """Run ``work`` in a transaction, again (bounded backoff, about 10 s in all) on a transient error.

    Deadlocks and serialisation failures undid the transaction; a dropped connection or a restarting server
    (AdminShutdown, cannot connect now, connection refused) may or may not have committed it, which is safe
    here because every job this runs is idempotent by its request id (see :mod:`worker.transient`).
    """
    from worker.transient import backoff_delays, is_transient

    for delay in [*backoff_delays(_ATTEMPTS, base=0.05, cap=3.0), None]:
        try:
            with session_scope() as session:
                return work(session)
        except (OperationalError, DBAPIError) as err:
            if delay is None or not is_transient(err):
                raise
            log.warning("intake transaction hit %s; trying again in %.2fs", type(err).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _refuse(request_id: str, task_name: str, refusal: Refusal, payload: Any) -> dict[str, Any]:
    """Record the refusal under the request id; if even that fails, still answer with the code."""
    try:
        return _retrying(lambda s: record_refused_request(s, request_id, task_name, refusal, payload))
    except Exception:
        log.exception("recording refusal %s of request %s failed", refusal.code.value, request_id)
        return {"requestId": request_id, "status": "REFUSED", "error": refusal.as_dict(), "messages": [],
                "recorded": False}


def run_send_job(task_name: str, payload: Any, request_id: str, who: Authenticator | None = None) -> IntakeOutcome:
    """Admit a send job; the caller publishes ``to_dispatch`` after this returns (the transaction is committed).

    ``who`` is the door's check of the caller (:mod:`worker.policy.auth`): the HTTP API's key and secret, or the
    broker job's signed envelope. Without it the payload must carry ``auth`` (in-process callers only).
    """
    settings = get_settings()
    try:
        return _retrying(lambda s: accept_send(s, task_name, payload, request_id, who, now=utcnow(),
                                               window_seconds=settings.duplicate_window_seconds))
    except Refusal as refusal:
        return IntakeOutcome(_refuse(request_id, task_name, refusal, payload))
    except Exception:
        log.exception("intake of request %s failed", request_id)
        return IntakeOutcome(_refuse(request_id, task_name, Refusal(Code.INTERNAL_ERROR, "send it again"), payload))


def refuse_unknown_job(task_name: str, request_id: str) -> dict[str, Any]:
    """The E814 answer for a job no task is registered under, recorded like any refused request.

    Kept under the request id so `hexavox status` finds it too. The body is never decoded: no
    field of it could change the answer, and a body that is not JSON must never be loaded.
    """
    return refuse_job(task_name, request_id, Refusal(Code.UNSUPPORTED_JOB, f"unknown job {task_name[:80]!r}"))


def refuse_job(task_name: str, request_id: str, refusal: Refusal) -> dict[str, Any]:
    """Answer a job refused before its body is looked at (unknown name, undecodable body, wrong queue)."""
    return _refuse(request_id, task_name, refusal, None)


def guarded(task_name: str, request_id: str, redelivered: bool, run: Callable[[], T]) -> T | dict[str, Any]:
    """Run a job unless the broker redelivered it more often than the attempt cap allows (then: E818).

    See :mod:`worker.policy.redeliveries`. A parked request that had in fact been answered keeps its first
    answer: recording the refusal returns an existing answer instead of replacing it.
    """
    if not redelivered:
        return run()
    cap = get_settings().max_delivery_attempts
    if count_redelivery(request_id, task_name) >= cap:
        log.error("request %s (%s) was redelivered %d times: parked with E818", request_id, task_name, cap)
        return _refuse(request_id, task_name, Refusal(Code.ATTEMPTS_EXHAUSTED, "the job kept stopping its worker"),
                       None)
    result = run()
    forget_redeliveries(request_id)
    return result


def run_admin_job_by_name(task_name: str, payload: Any, request_id: str,
                          who: Authenticator | None = None) -> dict[str, Any]:
    """Run an admin job and record its answer under the request id (idempotent by request id and key).

    ``who`` as for :func:`run_send_job`.
    """
    try:
        return _retrying(lambda s: _admin(s, task_name, payload, request_id, who))
    except Refusal as refusal:
        return _refuse(request_id, task_name, refusal, payload)
    except Exception:
        log.exception("admin job %s failed", request_id)
        return _refuse(request_id, task_name, Refusal(Code.INTERNAL_ERROR, "send it again"), payload)


def _admin(session: Session, task_name: str, payload: Any, request_id: str,
           authenticator: Authenticator | None) -> dict[str, Any]:
    from schema.states import RequestStatus

    job = parse_job(task_name, payload)
    who = resolve_caller(session, job, authenticator)
    _require_admin_rules(who, task_name, job)
    earlier = begin_request(session, request_id, tenant_id=who.tenant_id, merchant_id=None, kind=task_name,
                            idempotency_key=job.idempotency_key, digest=_admin_digest(task_name,
                                                                                                      payload))
    if earlier is not None:
        return earlier
    body = run_admin_job(session, who, job, utcnow().date())
    result = {"requestId": request_id, "status": RequestStatus.ACCEPTED.value, "result": body}
    finish_request(session, request_id, RequestStatus.ACCEPTED, result)
    return result


def _require_admin_rules(who: Principal, task_name: str, job: Any) -> None:
    """The key's rules for an admin job: its kind, the channel it names, the merchant it acts for (E802).

    A key limited to some merchants must name one: tenant-wide reads would show it the others.
    """
    who.require(task_name)
    channel = getattr(job, "channel", None)
    if isinstance(channel, str):
        who.require_channel(channel.strip().upper())
    merchant_id = getattr(job, "merchant_id", None)
    if isinstance(merchant_id, str):
        who.require_merchant(merchant_id)
    elif "*" not in who.allowed_merchants:
        who.require_merchant("")


def _admin_digest(task_name: str, payload: dict[str, Any]) -> str:
    """Admin keys are scoped to the tenant, across job kinds: the same key on another kind is another payload."""
    return payload_digest({**payload, "job": task_name})
