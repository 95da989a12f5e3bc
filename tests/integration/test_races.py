"""Concurrency through real Celery workers: two worker processes, real PostgreSQL and Redis.

Each seed shuffles the publish order and picks other recipients, so the interleavings differ.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from factories import Tenant, make_merchant, make_tenant, sms_job
from support import WorkerProcess, start_worker

SEEDS = [11, 22, 33]


@pytest.fixture
def two_workers(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Two separate worker processes (like two hosts), each with two pool processes."""
    from worker.queues import ALL_QUEUES

    # The race is the subject, not the window's length: on a loaded machine 300 jobs can take longer than the
    # default 10 s, and an identical send after the window is rightly accepted.
    env = {**hexavox_env, "HEXAVOX_DUPLICATE_WINDOW_SECONDS": "600"}
    workers = []
    try:
        for index in range(2):
            workers.append(start_worker(env, tmp_path / f"worker{index}.log", queues=",".join(ALL_QUEUES),
                                        extra=["-n", f"race{index}@%h"]))
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def _publish_all(tenant: Tenant, payloads: list[dict[str, object]], keys: list[str | None]) -> list[dict[str, object]]:
    from worker.client import HexavoxClient

    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        ids = [client.submit("hexavox.sms.send.v1", p, idempotency_key=k) for p, k in zip(payloads, keys, strict=True)]
        return [client.result(request_id, timeout=120) for request_id in ids]
    finally:
        client.close()


def _used(merchant_pk: int) -> int:
    from schema.models import Balance
    from worker.db import session_scope

    with session_scope() as session:
        return int(session.get(Balance, (merchant_pk, "SMS")).used)  # type: ignore[union-attr]


def _messages(merchant_pk: int) -> Counter[str]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        rows = session.execute(select(Message.status, func.count()).where(Message.merchant_id == merchant_pk)
                               .group_by(Message.status)).all()
    return Counter({status: count for status, count in rows})


def _codes(answers: list[dict[str, object]]) -> Counter[str]:
    codes: Counter[str] = Counter()
    for answer in answers:
        for row in answer["messages"]:  # type: ignore[attr-defined]
            codes[row.get("error", {}).get("code", row["status"])] += 1
    return codes


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", SEEDS)
def test_quota_duplicates_and_idempotency_hold_under_concurrency(two_workers: list[WorkerProcess], seed: int) -> None:
    rng = random.Random(seed)
    tenant = make_tenant()
    quota_pk = make_merchant(tenant, "quota", sms=37)
    dup_pk = make_merchant(tenant, "dup", sms=1000)
    idem_pk = make_merchant(tenant, "idem", sms=1000)

    # Given 200 sends to distinct numbers against 37 units, 50 identical sends, and 50 retries of one key
    numbers = [f"+1813555{n}" for n in rng.sample(range(1000, 2000), 200)]
    quota_jobs = [(sms_job(tenant, merchantId="quota", to=n), None) for n in numbers]
    dup_jobs = [(sms_job(tenant, merchantId="dup", body=f"Your OTP is {seed}{seed}", type="OTP"), None)] * 50
    idem_jobs = [(sms_job(tenant, merchantId="idem", body="Receipt 42"), f"retry-{seed}")] * 50
    jobs = quota_jobs + dup_jobs + idem_jobs
    rng.shuffle(jobs)

    # When they are all published at once and two worker processes race through them
    answers = _publish_all(tenant, [dict(j[0]) for j in jobs], [j[1] for j in jobs])
    by_merchant: dict[str, list[dict[str, object]]] = {"quota": [], "dup": [], "idem": []}
    for answer in answers:
        by_merchant[str(answer["merchantId"])].append(answer)

    # Then quota: exactly 37 accepted, never overspent, the rest refused for balance
    assert _codes(by_merchant["quota"]) == Counter({"QUEUED": 37, "E808": 163})
    assert _used(quota_pk) == 37
    # Then duplicates: one accepted and charged once, 49 refused as duplicates, free
    assert _codes(by_merchant["dup"]) == Counter({"QUEUED": 1, "E807": 49})
    assert _used(dup_pk) == 1
    assert sum(_messages(dup_pk).values()) == 50
    # Then idempotency: one message however many retries; every answer names it
    assert sum(_messages(idem_pk).values()) == 1
    message_ids = {row["messageId"] for a in by_merchant["idem"] for row in a["messages"]}  # type: ignore[attr-defined]
    assert len(message_ids) == 1
    assert _used(idem_pk) == 1
