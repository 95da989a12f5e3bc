"""Requests and Idempotency-Key on a real database: what the payload digest covers, a redelivered job and a
retried key get the first answer, a key is scoped to its merchant, and a changed payload is E809."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text

from schema.models import Request
from schema.states import RequestStatus
from worker.catalogue import Code
from worker.db import engine, session_scope
from worker.errors import Refusal
from worker.policy.idempotency import begin_request, finish_request, payload_digest

from factories import Tenant

PAYLOAD = {"merchantId": "gym-a", "to": "+18135551234", "body": "Class moved to 6 pm", "type": "TXN"}


def test_the_digest_leaves_out_credentials_and_the_key_only() -> None:
    bare = payload_digest(PAYLOAD)
    assert payload_digest({**PAYLOAD, "auth": {"keyId": "k", "secret": "s"}, "idempotencyKey": "abc"}) == bare
    assert payload_digest({**PAYLOAD, "body": "Class moved to 7 pm"}) != bare
    assert payload_digest({**PAYLOAD, "ref": "x"}) != bare
    assert bare == hashlib.sha256(json.dumps(PAYLOAD, sort_keys=True).encode()).hexdigest()


def test_the_digest_ignores_key_order_and_reads_any_value() -> None:
    assert payload_digest(dict(reversed(list(PAYLOAD.items())))) == payload_digest(PAYLOAD)
    moment = dt.datetime(2025, 3, 21, 9, 0)
    assert payload_digest({"time": moment}) == hashlib.sha256(b'{"time": "2025-03-21 09:00:00"}').hexdigest()


def begin(tenant: Tenant, merchant_id: int | None, request_id: str, key: str | None,
          payload: dict[str, Any] = PAYLOAD) -> dict[str, Any] | None:
    with session_scope() as session:
        return begin_request(session, request_id, tenant_id=tenant.tenant_id, merchant_id=merchant_id,
                             kind="sms", idempotency_key=key, digest=payload_digest(payload))


def finish(request_id: str, result: dict[str, Any], status: RequestStatus = RequestStatus.ACCEPTED) -> None:
    with session_scope() as session:
        finish_request(session, request_id, status, result)


def row(request_id: str) -> tuple[Any, ...]:
    with session_scope() as session:
        r = session.get(Request, request_id)
        assert r is not None
        return r.tenant_id, r.merchant_id, r.kind, r.idempotency_key, r.payload_sha256, r.status, r.result


def test_a_new_request_is_recorded_refused_and_empty_until_finished(tenant: Tenant, gym_a: int) -> None:
    assert begin(tenant, gym_a, "r1", "key-1") is None
    assert row("r1") == (tenant.tenant_id, gym_a, "sms", "key-1", payload_digest(PAYLOAD), "REFUSED", {})
    finish("r1", {"status": "ACCEPTED", "messages": [1]})
    assert row("r1")[5:] == ("ACCEPTED", {"status": "ACCEPTED", "messages": [1]})


def test_a_redelivered_job_gets_its_first_answer(tenant: Tenant, gym_a: int) -> None:
    begin(tenant, gym_a, "r1", None)
    finish("r1", {"first": True})
    assert begin(tenant, gym_a, "r1", None) == {"first": True}
    with session_scope() as session:
        assert session.scalar(select(text("count(*)")).select_from(Request)) == 1


def test_a_retried_key_gets_the_first_answer_under_a_new_request_id(tenant: Tenant, gym_a: int) -> None:
    begin(tenant, gym_a, "r1", "key-1")
    finish("r1", {"first": True})
    assert begin(tenant, gym_a, "r2", "key-1") == {"first": True}


def test_a_key_reused_with_another_payload_is_e809(tenant: Tenant, gym_a: int) -> None:
    begin(tenant, gym_a, "r1", "key-1")
    with pytest.raises(Refusal) as caught:
        begin(tenant, gym_a, "r2", "key-1", {**PAYLOAD, "body": "Class moved to 7 pm"})
    assert caught.value.as_dict() == {"code": Code.IDEMPOTENCY_KEY_REUSED.value, "name": "IDEMPOTENCY_KEY_REUSED",
                                      "detail": "this Idempotency-Key was used with a different payload",
                                      "field": "idempotencyKey"}


def test_a_key_belongs_to_one_merchant(tenant: Tenant, gym_a: int, gym_b: int) -> None:
    begin(tenant, gym_a, "r1", "key-1")
    assert begin(tenant, gym_b, "r2", "key-1", {**PAYLOAD, "merchantId": "gym-b"}) is None


def test_a_key_is_looked_up_under_its_own_merchant_only(tenant: Tenant, gym_a: int, gym_b: int) -> None:
    # gym-a used the key first; gym-b sent the same payload under another key (sorting first), then under it
    begin(tenant, gym_a, "r1", "key-1")
    finish("r1", {"from": "gym-a"})
    begin(tenant, gym_b, "r2", "key-0")
    finish("r2", {"from": "gym-b under another key"})
    begin(tenant, gym_b, "r3", "key-1")
    finish("r3", {"from": "gym-b with the key"})
    # a retry of gym-b's keyed request gets gym-b's keyed answer, nobody else's
    assert begin(tenant, gym_b, "r4", "key-1") == {"from": "gym-b with the key"}


def test_a_redelivered_job_is_answered_by_its_own_request_id_first(tenant: Tenant, gym_a: int) -> None:
    begin(tenant, gym_a, "r1", "key-1")
    finish("r1", {"request": "r1"})
    begin(tenant, gym_a, "r2", "key-2", {**PAYLOAD, "body": "Another text"})
    # the same job (same payload) comes back under its own id: it is r1's, whatever key it names now
    assert begin(tenant, gym_a, "r1", "key-2") == {"request": "r1"}


def test_finishing_a_request_never_begun_is_a_programming_error(policy_db: str) -> None:
    with pytest.raises(AssertionError, match="^begin_request inserted it in this transaction$"):
        finish("never-begun", {})


def test_requests_without_a_key_are_each_new(tenant: Tenant, gym_a: int) -> None:
    assert begin(tenant, gym_a, "r1", None) is None
    assert begin(tenant, gym_a, "r2", None) is None


@pytest.fixture
def vanish_requests(policy_db: str) -> Iterator[Callable[[], None]]:
    """Once armed, delete every request row from another connection right after each INSERT INTO requests:
    what a concurrent first attempt rolling back between our insert and our lookup looks like."""
    import psycopg

    eng = engine()

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REQUESTS"):
            with psycopg.connect(policy_db, autocommit=True) as other:
                other.execute("DELETE FROM requests")

    yield lambda: event.listen(eng, "after_cursor_execute", after)
    if event.contains(eng, "after_cursor_execute", after):
        event.remove(eng, "after_cursor_execute", after)


@pytest.mark.parametrize("key", ("key-1", None))
def test_a_first_attempt_that_vanished_is_an_internal_error_to_retry(tenant: Tenant, gym_a: int, key: str | None,
                                                                     vanish_requests: Callable[[], None]) -> None:
    # Given a first attempt under the same request id (no key) or the same key (another request id)
    request_id = str(uuid.uuid4())
    begin(tenant, gym_a, request_id if key is None else "r0", key)
    # When it disappears between our insert (which conflicted with it) and our lookup
    vanish_requests()
    with pytest.raises(Refusal) as caught:
        begin(tenant, gym_a, request_id, key)
    # Then the sender is told to send again, not answered with a result that does not exist
    assert caught.value.as_dict() == {"code": Code.INTERNAL_ERROR.value, "name": "INTERNAL_ERROR",
                                      "detail": "request could not be recorded; send it again"}
