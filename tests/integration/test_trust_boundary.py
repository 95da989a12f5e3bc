"""The broker as an attacker who can reach it sees it: nothing to read, nothing to forge, nothing to replay.

Jobs are published with plain kombu, as another language (or an intruder) would, and run by a real worker.
"""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from sqlalchemy import select

from factories import Tenant, make_merchant, make_tenant, sms
from support import WorkerProcess, envelope_for, publish_raw

SMS_TASK = "hexavox.sms.send.v1"
PHONE = "+18135551234"


def _wait(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _payload(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    payload = sms(tenant, **fields)
    del payload["auth"]
    return payload


def _answer(request_id: str) -> dict[str, Any]:
    from worker.status import request_status

    _wait(lambda: request_status(request_id) is not None, 30, f"an answer to {request_id}")
    status = request_status(request_id)
    assert status is not None
    return dict(status["answer"])


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant)
    return tenant


def test_a_job_published_by_the_client_carries_no_secret_on_the_broker(tenant: Tenant,
                                                                       hexavox_env: dict[str, str]) -> None:
    from worker.client import HexavoxClient

    # Given a trusted service publishing with the client, and no worker draining the queue
    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        client.send_sms(merchantId="gym-a", to=PHONE, body="Your OTP is 482913", sender="GYMA", type="OTP")
    finally:
        client.close()
    # When someone reads the queue with LRANGE
    queued = redis.Redis.from_url(hexavox_env["HEXAVOX_BROKER_URL"]).lrange("otp", 0, -1)
    # Then the job is there, signed, and neither the secret nor its digest is anywhere in it
    assert len(queued) == 1
    from worker.policy.auth import hash_secret

    assert b"hexavox_envelope" in queued[0]
    assert tenant.secret.encode() not in queued[0] and hash_secret(tenant.secret).encode() not in queued[0]


def test_a_signed_job_is_accepted_and_a_replay_under_its_own_id_changes_nothing(
        celery_worker: WorkerProcess, tenant: Tenant) -> None:
    broker = celery_worker.env["HEXAVOX_BROKER_URL"]
    payload, request_id = _payload(tenant, type="OTP", body="Your OTP is 271828"), str(uuid.uuid4())
    envelope = envelope_for(tenant.key_id, tenant.secret, SMS_TASK, request_id, payload)
    publish_raw(broker, SMS_TASK, payload, queue="otp", request_id=request_id, envelope=envelope)
    first = _answer(request_id)
    assert first["status"] == "ACCEPTED"
    # When the captured job is published again, exactly as it was
    publish_raw(broker, SMS_TASK, payload, queue="otp", request_id=request_id, envelope=envelope)
    time.sleep(2)
    # Then it is the same request: one message, the same answer
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        assert len(session.scalars(select(Message).where(Message.request_id == request_id)).all()) == 1
    assert _answer(request_id) == first


@pytest.mark.parametrize("forgery", ["new id", "altered", "unsigned", "wrong key", "secret in payload"])
def test_a_forged_or_replayed_job_is_refused_e801(celery_worker: WorkerProcess, tenant: Tenant, forgery: str) -> None:
    broker = celery_worker.env["HEXAVOX_BROKER_URL"]
    payload, captured_id = _payload(tenant, type="OTP", body="Your OTP is 271828"), str(uuid.uuid4())
    envelope: dict[str, Any] | None = envelope_for(tenant.key_id, tenant.secret, SMS_TASK, captured_id, payload)
    request_id = str(uuid.uuid4())  # every forgery goes out under an id of its own
    if forgery == "altered":
        request_id, payload = captured_id, {**payload, "to": "+18135550000"}
    elif forgery == "unsigned":
        envelope = None
    elif forgery == "wrong key":
        envelope = envelope_for(tenant.key_id, "guessed-secret", SMS_TASK, request_id, payload)
    elif forgery == "secret in payload":
        payload = {**payload, "auth": {"keyId": tenant.key_id, "secret": tenant.secret}}
        envelope = envelope_for(tenant.key_id, tenant.secret, SMS_TASK, request_id, payload)
    publish_raw(broker, SMS_TASK, payload, queue="otp", request_id=request_id, envelope=envelope)
    answer = _answer(request_id)
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E801", answer
    assert answer["messages"] == []


def test_a_job_signed_outside_the_replay_window_is_refused_e875(celery_worker: WorkerProcess, tenant: Tenant) -> None:
    payload, request_id = _payload(tenant), str(uuid.uuid4())
    stale = envelope_for(tenant.key_id, tenant.secret, SMS_TASK, request_id, payload,
                         issued_at=int(time.time()) - 2 * 86400)
    publish_raw(celery_worker.env["HEXAVOX_BROKER_URL"], SMS_TASK, payload, queue="transactional",
                request_id=request_id, envelope=stale)
    assert _answer(request_id)["error"]["code"] == "E875"


def test_a_key_limited_to_one_merchant_cannot_send_for_another(celery_worker: WorkerProcess, tenant: Tenant) -> None:
    from worker.db import session_scope
    from worker.tenants import KeyRules, create_key

    make_merchant(tenant, "gym-b")
    with session_scope() as session:
        key_id, secret = create_key(session, "acme", KeyRules(merchants=["gym-a"]))
    payload, request_id = _payload(tenant, merchantId="gym-b"), str(uuid.uuid4())
    publish_raw(celery_worker.env["HEXAVOX_BROKER_URL"], SMS_TASK, payload, queue="transactional",
                request_id=request_id, envelope=envelope_for(key_id, secret, SMS_TASK, request_id, payload))
    assert _answer(request_id)["error"]["code"] == "E802"


def _admit_without_dispatch(tenant: Tenant, to: str) -> str:
    """A QUEUED message whose dispatch was never published (in-process intake)."""
    from worker.runner import run_send_job

    outcome = run_send_job(SMS_TASK, sms(tenant, to=to), str(uuid.uuid4()))
    [(message_id, _, _)] = outcome.to_dispatch
    return message_id


def _state(message_id: str) -> str:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


def test_internal_tasks_run_only_when_the_service_sealed_them_on_an_internal_queue(
        celery_worker: WorkerProcess, tenant: Tenant) -> None:
    from worker.celery_app import app
    from worker.dispatch_item import DispatchItem
    from worker.publish import publish_dispatch
    from worker.task_names import DISPATCH

    broker = celery_worker.env["HEXAVOX_BROKER_URL"]
    unsigned, wrong_queue, sealed = (_admit_without_dispatch(tenant, f"+1813555120{n}") for n in range(3))
    # Given an unsigned dispatch on its own queue, and a sealed one put on a tenant's intake queue
    publish_raw(broker, DISPATCH, unsigned, queue="dispatch.transactional", body=f'[["{unsigned}"], {{}}, {{}}]')
    app.send_task(DISPATCH, args=[wrong_queue], queue="transactional")
    # And a dispatch the service itself published
    assert publish_dispatch([DispatchItem(sealed, "SMS", "TXN")]) == 1
    # Then only the service's own runs
    _wait(lambda: _state(sealed) not in ("QUEUED", "DISPATCHING"), 30, "the sealed dispatch")
    time.sleep(1)
    assert _state(unsigned) == "QUEUED" and _state(wrong_queue) == "QUEUED"
    log = celery_worker.log()
    assert "refused to run hexavox.internal.dispatch" in log and "intake queue 'transactional'" in log


def test_a_forged_stop_report_on_a_public_queue_opts_nobody_out(celery_worker: WorkerProcess, tenant: Tenant) -> None:
    from schema.models import Consent
    from worker.db import session_scope
    from worker.task_names import APPLY_REPORTS

    # Given the report task an intruder would publish on the otp queue and on the callbacks queue
    events = [{"provider": "simulated", "status": "UNKNOWN", "replyFrom": PHONE, "replyText": "STOP"}]
    for queue in ("otp", "callbacks"):
        publish_raw(celery_worker.env["HEXAVOX_BROKER_URL"], APPLY_REPORTS, None, queue=queue,
                    body=__import__("json").dumps([["simulated", events], {}, {}]))
    _wait(lambda: celery_worker.log().count("refused to run hexavox.internal.apply_reports") == 2, 30,
          "both copies refused")
    # Then no consent changed
    with session_scope() as session:
        assert session.scalars(select(Consent)).all() == []


def test_a_pickled_job_is_answered_e876_without_being_decoded(celery_worker: WorkerProcess, tenant: Tenant) -> None:
    from worker.client import HexavoxClient

    # Given an old client's pickled job with credentials and a phone number in it
    payload = {**sms(tenant), "to": "+18135559876"}
    body = pickle.dumps(([payload], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
    request_id = publish_raw(celery_worker.env["HEXAVOX_BROKER_URL"], SMS_TASK, None, queue="transactional",
                             body=body, content_type="application/x-python-serialize")
    # When its sender reads the answer under its id
    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        answer = client.result(request_id, timeout=30)
    finally:
        client.close()
    # Then it is refused with a code, and the worker's log shows neither the secret nor the number
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E876"
    log = celery_worker.log()
    assert tenant.secret not in log and "8135559876" not in log and request_id in log


def test_an_unknown_task_of_any_name_is_logged_without_its_body(celery_worker: WorkerProcess, tenant: Tenant) -> None:
    payload = {**_payload(tenant), "to": "+18135554321"}
    request_id = publish_raw(celery_worker.env["HEXAVOX_BROKER_URL"], "acme.sms.send.v1", payload,
                             queue="transactional")
    _wait(lambda: request_id[:40] in celery_worker.log(), 30, "the rejection logged")
    assert "8135554321" not in celery_worker.log()


def test_admin_jobs_check_the_keys_channel_and_merchant_rules(tenant: Tenant) -> None:
    from worker.db import session_scope
    from worker.policy.auth import by_secret
    from worker.runner import run_admin_job_by_name
    from worker.tenants import KeyRules, create_key

    with session_scope() as session:
        sms_key = create_key(session, "acme", KeyRules(channels=["SMS"]))
        gym_a_key = create_key(session, "acme", KeyRules(merchants=["gym-a"]))
    consent = {"merchantId": "gym-a", "channel": "EMAIL", "contact": "ann@example.com", "status": "OPT_IN"}
    refused = run_admin_job_by_name("hexavox.consent.upsert.v1", consent, str(uuid.uuid4()), by_secret(*sms_key))
    assert refused["error"]["code"] == "E802" and refused["error"]["field"] == "channel"
    bulk = {"merchantId": "gym-a", "consents": [{"channel": "EMAIL", "contact": "ann@example.com",
                                                 "status": "OPT_IN"}]}
    rows = run_admin_job_by_name("hexavox.consent.bulk_upsert.v1", bulk, str(uuid.uuid4()), by_secret(*sms_key))
    assert rows["result"]["results"][0]["error"]["code"] == "E802"
    allowed = run_admin_job_by_name("hexavox.consent.upsert.v1", {**consent, "channel": "SMS", "contact": PHONE},
                                    str(uuid.uuid4()), by_secret(*sms_key))
    assert allowed["status"] == "ACCEPTED"
    # A key limited to gym-a may not act for another merchant, nor read tenant-wide reports
    other = run_admin_job_by_name("hexavox.merchant.upsert.v1", {"merchantId": "gym-z", "displayName": "Z"},
                                  str(uuid.uuid4()), by_secret(*gym_a_key))
    assert other["error"]["code"] == "E802"
    wide = run_admin_job_by_name("hexavox.alerts.list.v1", {}, str(uuid.uuid4()), by_secret(*gym_a_key))
    assert wide["error"]["code"] == "E802"


def test_a_revoked_key_is_refused_on_the_very_next_job(tenant: Tenant) -> None:
    from worker.db import session_scope
    from worker.policy.auth import by_secret
    from worker.runner import run_send_job
    from worker.tenants import revoke_key

    who = by_secret(tenant.key_id, tenant.secret)
    assert run_send_job(SMS_TASK, _payload(tenant), str(uuid.uuid4()), who).result["status"] == "ACCEPTED"
    with session_scope() as session:
        revoke_key(session, tenant.key_id)
    refused = run_send_job(SMS_TASK, _payload(tenant, to="+18135551235"), str(uuid.uuid4()), who).result
    assert refused["error"]["code"] == "E801"


def test_a_rotated_key_works_through_its_grace_period_only(tenant: Tenant) -> None:
    import datetime as dt

    from schema.models import ApiKey
    from worker.db import session_scope
    from worker.policy.auth import by_secret
    from worker.runner import run_send_job
    from worker.tenants import rotate_key

    with session_scope() as session:
        new_id, new_secret, old = rotate_key(session, tenant.key_id, grace_seconds=3600)
    assert old["expiresAt"] is not None
    # Then the old and the new key both work during the grace period
    for who in (by_secret(tenant.key_id, tenant.secret), by_secret(new_id, new_secret)):
        payload = _payload(tenant, body=f"hi {uuid.uuid4().hex[:6]}")  # no duplicate of the other
        assert run_send_job(SMS_TASK, payload, str(uuid.uuid4()), who).result["status"] == "ACCEPTED"
    # When the grace period is over
    with session_scope() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_id == tenant.key_id)).one()
        key.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    refused = run_send_job(SMS_TASK, _payload(tenant, body="late"), str(uuid.uuid4()),
                           by_secret(tenant.key_id, tenant.secret)).result
    assert refused["error"]["code"] == "E801"
