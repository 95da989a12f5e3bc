"""Idempotency-Key on admin writes (seed 003: every write): a retried logical action collapses into its first answer."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import Tenant, make_merchant, make_tenant


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant)
    return tenant


def _run(tenant: Tenant, task: str, payload: dict[str, Any]) -> dict[str, Any]:
    from worker.policy.auth import by_secret
    from worker.runner import run_admin_job_by_name

    return run_admin_job_by_name(task, payload, str(uuid.uuid4()), by_secret(tenant.key_id, tenant.secret))


def _count(model: Any) -> int:
    from worker.db import session_scope

    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_retried_upgrade_under_one_key_is_one_upgrade(tenant: Tenant) -> None:
    from schema.models import BillingUpgrade

    # 100 SMS units at the default credit price (9,750 micro-dollars each): 97.5 cents, 98 rounded up
    upgrade = {"merchantId": "gym-a", "channel": "SMS", "units": 100, "amountCents": 98, "referenceId": "r-1",
               "idempotencyKey": "upgrade-1"}
    first = _run(tenant, "hexavox.billing.upgrade.v1", upgrade)
    again = _run(tenant, "hexavox.billing.upgrade.v1", upgrade)
    assert first["status"] == "ACCEPTED" and again == first
    assert _count(BillingUpgrade) == 1


def test_a_retried_merchant_creation_answers_the_first_even_after_an_update(tenant: Tenant) -> None:
    create = {"merchantId": "gym-new", "displayName": "New", "smsLimit": 10, "idempotencyKey": "create-gym-new"}
    first = _run(tenant, "hexavox.merchant.upsert.v1", create)
    _run(tenant, "hexavox.merchant.upsert.v1", {**create, "idempotencyKey": "rename", "displayName": "Renamed"})
    # When the first creation is retried (its answer was lost), Then it is answered, not applied again
    assert _run(tenant, "hexavox.merchant.upsert.v1", create) == first


def test_the_same_key_with_another_payload_or_job_is_refused_e809(tenant: Tenant) -> None:
    consent = {"merchantId": "gym-a", "channel": "SMS", "contact": "+18135551234", "status": "OPT_IN",
               "idempotencyKey": "k-1"}
    assert _run(tenant, "hexavox.consent.upsert.v1", consent)["status"] == "ACCEPTED"
    changed = _run(tenant, "hexavox.consent.upsert.v1", {**consent, "status": "OPT_OUT"})
    assert changed["error"]["code"] == "E809" and changed["error"]["field"] == "idempotencyKey"
    other_job = _run(tenant, "hexavox.list.create.v1", {"merchantId": "gym-a", "listId": "l1", "name": "L",
                                                        "idempotencyKey": "k-1"})
    assert other_job["error"]["code"] == "E809"


def test_keys_of_two_tenants_never_collide(tenant: Tenant) -> None:
    other = make_tenant("globex")
    make_merchant(other)
    consent = {"merchantId": "gym-a", "channel": "SMS", "contact": "+18135551234", "status": "OPT_IN",
               "idempotencyKey": "shared"}
    assert _run(tenant, "hexavox.consent.upsert.v1", consent)["status"] == "ACCEPTED"
    assert _run(other, "hexavox.consent.upsert.v1", {**consent, "status": "OPT_OUT"})["status"] == "ACCEPTED"


def test_concurrent_retries_of_one_list_creation_create_one_list(tenant: Tenant) -> None:
    from schema.models import ContactListMember

    job = {"merchantId": "gym-a", "listId": "members", "name": "Members", "idempotencyKey": "list-1",
           "contacts": ["+18135551234", "+18135551235"]}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _run(tenant, "hexavox.list.create.v1", job), range(8)))
    assert all(answer["status"] == "ACCEPTED" for answer in answers), answers
    assert {answer["result"]["added"] for answer in answers} == {2}  # every retry gets the first answer
    assert _count(ContactListMember) == 2
