"""The lookup cache (worker/lookup_cache.py): a warm send reads no key, merchant or route, yet every change to them
is seen by the very next job, a lost change notice only lasts HEXAVOX_LOOKUP_CACHE_SECONDS, and without Redis every
lookup reads the database."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from factories import Tenant, make_merchant, make_tenant, sms, sms_job
from support import envelope_for

SMS_TASK = "hexavox.sms.send.v1"
Door = Callable[[Tenant, dict[str, Any], str], Any]


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Iterator[Tenant]:
    from worker import lookup_cache

    lookup_cache.clear()
    tenant = make_tenant()
    make_merchant(tenant)
    yield tenant
    lookup_cache.clear()


def _http_door(tenant: Tenant, payload: dict[str, Any], request_id: str) -> Any:
    from api.access import Caller

    return Caller(tenant.key_id, tenant.secret, None).authenticator()


def _queue_door(tenant: Tenant, payload: dict[str, Any], request_id: str) -> Any:
    from worker.policy.auth import by_envelope

    envelope = envelope_for(tenant.key_id, tenant.secret, SMS_TASK, request_id, payload)
    return by_envelope(envelope, SMS_TASK, request_id, [payload], {}, max_age=300)


def _send(tenant: Tenant, door: Door = _http_door, **fields: Any) -> dict[str, Any]:
    from worker.runner import run_send_job

    payload, request_id = sms_job(tenant, body=f"hi {uuid.uuid4().hex[:8]}", **fields), str(uuid.uuid4())
    result: dict[str, Any] = run_send_job(SMS_TASK, payload, request_id, door(tenant, payload, request_id)).result
    return result


def _code(answer: dict[str, Any]) -> str | None:
    error = answer.get("error") or answer["messages"][0].get("error")
    return str(error["code"]) if error else None


def _upsert(tenant: Tenant, **fields: Any) -> None:
    from worker.runner import run_admin_job_by_name

    answer = run_admin_job_by_name("hexavox.merchant.upsert.v1", {"auth": tenant.auth, "merchantId": "gym-a",
                                                                  **fields}, str(uuid.uuid4()))
    assert answer["status"] == "ACCEPTED", answer


def _revoke(tenant: Tenant) -> None:
    from worker.db import session_scope
    from worker.tenants import revoke_key

    with session_scope() as session:
        revoke_key(session, tenant.key_id)


def _statements(run: Callable[[], object]) -> list[str]:
    """The SQL ``run`` sends."""
    from sqlalchemy import event

    from worker.db import engine

    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine(), "before_cursor_execute", note)
    try:
        run()
    finally:
        event.remove(engine(), "before_cursor_execute", note)
    return seen


def test_a_warm_send_reads_no_key_merchant_or_route(tenant: Tenant) -> None:
    assert _send(tenant)["status"] == "ACCEPTED"
    # When the same key sends again for the same merchant and type
    sql = _statements(lambda: _send(tenant))
    # Then its key, merchant and route come from the cache, and its quota is still charged in the database
    assert not [s for s in sql if any(f"FROM {t} " in s for t in ("api_keys", "merchants", "routes"))], sql
    assert any(s.startswith("UPDATE balances") for s in sql)


@pytest.mark.parametrize("door", [_http_door, _queue_door], ids=["http", "queue"])
def test_a_revoked_key_is_refused_on_the_very_next_job(tenant: Tenant, door: Door) -> None:
    assert _send(tenant, door)["status"] == "ACCEPTED"
    assert _send(tenant, door)["status"] == "ACCEPTED"  # served from the cache
    _revoke(tenant)
    assert _code(_send(tenant, door)) == "E801"


def test_a_deactivated_merchant_is_refused_on_the_next_send(tenant: Tenant) -> None:
    assert _send(tenant)["status"] == "ACCEPTED"
    _upsert(tenant, active=False)
    assert _code(_send(tenant)) == "E804"
    _upsert(tenant, active=True)
    assert _send(tenant)["status"] == "ACCEPTED"


def test_a_lowered_limit_applies_to_the_next_send(tenant: Tenant) -> None:
    assert _send(tenant)["status"] == "ACCEPTED"
    _upsert(tenant, smsLimit=1)  # one segment, already used: limits are charged in the database, never cached
    assert _code(_send(tenant)) == "E808"


def test_a_route_change_applies_to_the_next_send(tenant: Tenant) -> None:
    assert _send(tenant)["status"] == "ACCEPTED"
    _upsert(tenant, routes={"TXN": False})
    assert _code(_send(tenant)) == "E623"
    _upsert(tenant, routes={"TXN": True})
    assert _send(tenant)["status"] == "ACCEPTED"


def test_a_lost_change_notice_lasts_no_longer_than_the_setting(tenant: Tenant, monkeypatch: pytest.MonkeyPatch,
                                                               ) -> None:
    from worker import lookup_cache
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_LOOKUP_CACHE_SECONDS", "0.5")
    reset_settings()
    assert _send(tenant)["status"] == "ACCEPTED"
    # Given a revocation whose notice never reaches Redis
    monkeypatch.setattr(lookup_cache, "bump", lambda: False)
    _revoke(tenant)
    assert _send(tenant)["status"] == "ACCEPTED"  # the stale window this setting bounds
    # Then once the setting's time has passed, the key is refused
    time.sleep(0.6)
    assert _code(_send(tenant)) == "E801"


def test_without_redis_every_lookup_reads_the_database(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.db import session_scope
    from worker.lookup_cache import current_generation
    from worker.settings import reset_settings

    assert _send(tenant)["status"] == "ACCEPTED"  # cached while Redis answers
    # When Redis goes away (nothing listens on port 1) and the key is revoked: the notice cannot be sent
    monkeypatch.setenv("HEXAVOX_REDIS_URL", "redis://127.0.0.1:1/0")
    reset_settings()
    _revoke(tenant)
    # Then the next job reads the key from the database instead of trusting the cache
    assert _code(_send(tenant)) == "E801"
    with session_scope() as session:
        assert current_generation(session) is None


def test_a_transaction_that_writes_a_merchant_neither_reads_nor_keeps_cached_rows(tenant: Tenant) -> None:
    from worker.contract import MerchantUpsertJob
    from worker.db import session_scope
    from worker.errors import Refusal
    from worker.policy.merchants import load_merchant, upsert_merchant

    assert _send(tenant)["status"] == "ACCEPTED"  # gym-a cached
    job = MerchantUpsertJob.model_validate({"auth": tenant.auth, "merchantId": "gym-b"})
    # Given a transaction that creates gym-b and deactivates gym-a, and is then rolled back
    with pytest.raises(RuntimeError), session_scope() as session:
        upsert_merchant(session, tenant.tenant_id, job, dt.date.today())
        load_merchant(session, tenant.tenant_id, "gym-a").active = False
        with pytest.raises(Refusal):  # it sees its own write, not the cached row
            load_merchant(session, tenant.tenant_id, "gym-a")
        assert load_merchant(session, tenant.tenant_id, "gym-b").external_id == "gym-b"
        raise RuntimeError("roll back")
    # Then neither its uncommitted merchant nor its deactivation was kept for other jobs
    with session_scope() as session, pytest.raises(Refusal) as missing:
        load_merchant(session, tenant.tenant_id, "gym-b")
    assert missing.value.code.value == "E803"
    assert _send(tenant)["status"] == "ACCEPTED"


def test_the_cache_holds_no_orm_instance_and_no_secret(tenant: Tenant) -> None:
    from worker import lookup_cache
    from worker.db import session_scope
    from worker.policy.merchants import load_merchant

    assert _send(tenant)["status"] == "ACCEPTED"
    with session_scope() as session:
        webhook_secret = load_merchant(session, tenant.tenant_id, "gym-a").webhook_secrets[-1]
    values = [entry[2] for entry in lookup_cache._entries.values()]
    assert len(values) == 3  # key, merchant, route
    assert not [v for v in values if hasattr(v, "_sa_instance_state")]
    assert tenant.secret not in repr(values) and webhook_secret not in repr(values)


def test_payload_auth_is_cached_like_a_door(tenant: Tenant) -> None:
    from worker.runner import run_send_job

    assert run_send_job(SMS_TASK, sms(tenant, body="a"), str(uuid.uuid4())).result["status"] == "ACCEPTED"
    _revoke(tenant)
    assert _code(run_send_job(SMS_TASK, sms(tenant, body="b"), str(uuid.uuid4())).result) == "E801"
