"""A job published under a task name no worker runs, through a real worker process.

Another service may publish a contract version this worker does not run yet
(``hexavox.sms.send.v2``) or a misspelt name. Celery drops such a message as unregistered;
the caller must still get an answer it can read, with a catalogue code, under its request id.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import NotRegistered

from factories import Tenant, make_tenant, sms
from support import WorkerProcess, publish_raw


def _publish_raw(worker: WorkerProcess, task_name: str, payload: dict[str, Any]) -> str:
    """Publish a job the way a non-Python service does: Celery protocol 2, a JSON body, our own request id."""
    return publish_raw(worker.env["HEXAVOX_BROKER_URL"], task_name, payload, queue="transactional")


def _result(tenant: Tenant, request_id: str) -> dict[str, Any]:
    from worker.client import HexavoxClient

    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        return client.result(request_id, timeout=30)
    finally:
        client.close()


@pytest.mark.parametrize("task_name", ["hexavox.sms.send.v2", "hexavox.fax.send.v1"])
def test_an_unknown_hexavox_job_is_answered_e814(celery_worker: WorkerProcess, task_name: str) -> None:
    from worker.status import request_status

    # Given a job under a hexavox name no task is registered for, published with plain kombu
    tenant = make_tenant()
    request_id = _publish_raw(celery_worker, task_name, sms(tenant))
    # When the caller reads its answer under the request id
    answer = _result(tenant, request_id)
    # Then it is the intake's refusal answer, with E814, not Celery's NotRegistered
    assert answer == {"requestId": request_id, "status": "REFUSED", "messages": [],
                      "error": {"code": "E814", "name": "UNSUPPORTED_JOB", "detail": f"unknown job {task_name!r}"}}
    # And the refusal is recorded like any other, so `hexavox status` finds it
    status = request_status(request_id)
    assert status is not None and status["status"] == "REFUSED" and status["answer"] == answer


def test_an_unknown_name_outside_hexavox_keeps_celerys_default(celery_worker: WorkerProcess) -> None:
    from worker.status import request_status

    # Given a job under a name that is not ours
    tenant = make_tenant()
    request_id = _publish_raw(celery_worker, "acme.sms.send.v1", sms(tenant))
    # When the caller reads its answer, Then it is Celery's own NotRegistered failure, and nothing was recorded
    with pytest.raises(NotRegistered):
        _result(tenant, request_id)
    assert request_status(request_id) is None
