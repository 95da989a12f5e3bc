"""Statements and commits per single TXN message: intake, then its inline dispatch through the simulated provider.

The worker's pool is threads in one process, so the Python work of each statement is what bounds throughput on
this, the hottest path (docs/performance.md). The budgets below are today's figures: a change that adds a round
trip or a commit here fails this test, and must either be removed or raise the budget on purpose.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from schema.models import DuplicateGuard
from worker.catalogue import Code
from worker.db import engine, session_scope
from worker.inline_dispatch import dispatch_inline
from worker.policy.quota import add_credits
from worker.runner import run_send_job
from worker.sending import provider_sender
from worker.settings import get_settings

from factories import Tenant, make_merchant, make_tenant, sms

SEND = "hexavox.sms.send.v1"
#: Statements per message on PostgreSQL with warm lookups (key, merchant and route come from worker/lookup_cache.py):
#: intake 5 (request claim, consent with the duplicate window, balance, message, answer), dispatch 3 (the claim with
#: its history row, the provider's ledger, the record with its history row).
STATEMENT_BUDGET = 8
#: Commits per message: intake; the claim (before the provider call); the provider's ledger; the record.
COMMIT_BUDGET = 4


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_LOOKUP_CACHE_SECONDS", "300")  # a slow machine must not expire the warm lookups
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant)
    return tenant


class Tally:
    """Every statement and commit on the configured database's engine while it listens."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def statement(self, _conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        self.statements.append(" ".join(sql.split()[:3]))

    def commit(self, _conn: Any) -> None:
        self.commits += 1


@pytest.fixture
def tally(tenant: Tenant) -> Iterator[Tally]:
    eng, counted = engine(), Tally()
    event.listen(eng, "before_cursor_execute", counted.statement)
    event.listen(eng, "commit", counted.commit)
    yield counted
    event.remove(eng, "before_cursor_execute", counted.statement)
    event.remove(eng, "commit", counted.commit)


def send_one(tenant: Tenant, n: int) -> str:
    settings = get_settings()
    outcome = run_send_job(SEND, sms(tenant, to=f"+1813555{n:04d}", body=f"Class {n} moved"), str(uuid.uuid4()))
    left = dispatch_inline(outcome.result, outcome.to_dispatch, settings, lambda: provider_sender(settings),
                           redelivered=False)
    assert left == [], outcome.result
    status: str = outcome.result["status"]
    return status


def test_one_txn_message_stays_within_its_statement_and_commit_budget(tenant: Tenant, tally: Tally) -> None:
    send_one(tenant, 0)  # warm: the engine's pool, the simulator's table, the route cache
    for n in range(1, 4):
        tally.statements.clear()
        tally.commits = 0
        assert send_one(tenant, n) == "ACCEPTED"
        kinds = Counter(tally.statements)
        assert len(tally.statements) <= STATEMENT_BUDGET, f"{len(tally.statements)} statements: {dict(kinds)}"
        assert tally.commits <= COMMIT_BUDGET, f"{tally.commits} commits"
        assert not [s for s in tally.statements if s.startswith(("SAVEPOINT", "RELEASE"))], dict(kinds)


def test_a_lone_message_refused_for_quota_leaves_the_duplicate_window_free(hexavox_env: dict[str, str]) -> None:
    # Given a merchant out of SMS units: the lone message claims the window, then quota refuses it (E808)
    tenant = make_tenant()
    merchant_pk = make_merchant(tenant, sms=0)
    job = sms(tenant, to="+18135559876", body="Same text twice")
    first = run_send_job(SEND, job, str(uuid.uuid4())).result
    assert first["messages"][0]["error"]["code"] == Code.INSUFFICIENT_BALANCE.value
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(DuplicateGuard)) == 0  # the claim was released
        add_credits(session, merchant_pk, "SMS", 5)
    # When the same content goes again at once, it is accepted and charged (not E807), and holds the window
    again = run_send_job(SEND, job, str(uuid.uuid4())).result
    assert again["status"] == "ACCEPTED", again
    third = run_send_job(SEND, job, str(uuid.uuid4())).result
    assert third["messages"][0]["error"]["code"] == Code.DUPLICATE_WITHIN_WINDOW.value
