"""Dispatch through a merchant's provider order: failover on unavailable, never on ambiguous; the breaker opens
and writes a provider alert. Real PostgreSQL and Redis; simulated providers with their ledger."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from factories import Tenant, make_merchant, make_tenant, sms

PROVIDERS = {
    "down": {"driver": "simulated", "unavailable_rate": 1.0},
    "lossy": {"driver": "simulated", "ambiguous_rate": 1.0},
    "up": {"driver": "simulated"},
}


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps(PROVIDERS))
    reset_settings()
    reset_providers()
    return make_tenant()


def _dispatch_all(tenant: Tenant, merchant: str, count: int) -> list[tuple[str, str]]:
    """Accept ``count`` messages and dispatch each once in this process; returns (step, message id) pairs."""
    from worker.policy.dispatch import dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    numbers = [f"+1813555{1000 + i}" for i in range(count)]
    outcome = run_send_job("hexavox.sms.send.v1", sms(tenant, merchantId=merchant, to=numbers), str(uuid.uuid4()))
    settings = get_settings()
    send = provider_sender(settings)
    return [(dispatch_message(mid, settings, send).value, mid) for mid, _, _ in outcome.to_dispatch]


def _providers_of(ids: list[str]) -> Counter[str | None]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return Counter(session.scalars(select(Message.provider).where(Message.id.in_(ids))))


def test_an_unavailable_provider_fails_over_to_the_next_and_its_breaker_opens_with_an_alert(tenant: Tenant) -> None:
    # Given a merchant whose SMS route is "down" first, then "up"
    from providers.simulated import ledger_calls
    from schema.models import Alert
    from worker.db import session_scope
    from worker.settings import get_settings

    make_merchant(tenant, "gym-a", providers={"SMS": ["down", "up"]})
    # When eight messages are dispatched
    steps = _dispatch_all(tenant, "gym-a", 8)
    ids = [mid for _, mid in steps]
    # Then every one was sent by "up", none reached "down" (unavailable means nothing left our side)
    assert [step for step, _ in steps] == ["SENT"] * 8
    assert _providers_of(ids) == Counter({"up": 8})
    calls = ledger_calls(get_settings().database_url)
    assert {c["provider"] for c in calls if c["outcome"] == "accepted"} == {"up"}
    # And after five straight failures the breaker for "down" opened once and wrote one provider alert
    with session_scope() as session:
        alerts = session.scalars(select(Alert).where(Alert.kind == "PROVIDER_CIRCUIT_OPEN")).all()
    assert [a.detail["provider"] for a in alerts] == ["down"]
    down_calls = [c for c in calls if c["provider"] == "down"]
    assert len(down_calls) == 5  # the open breaker kept the last three away from "down"


def test_an_ambiguous_provider_is_never_failed_over(tenant: Tenant) -> None:
    # Given a merchant whose first provider loses every answer (it has the message), then "up"
    from providers.simulated import ledger_counts
    from worker.settings import get_settings

    make_merchant(tenant, "gym-b", providers={"SMS": ["lossy", "up"]})
    # When three messages are dispatched
    steps = _dispatch_all(tenant, "gym-b", 3)
    ids = [mid for _, mid in steps]
    # Then each is AMBIGUOUS at "lossy" and was never sent to "up": reconcile decides, not failover
    assert [step for step, _ in steps] == ["AMBIGUOUS"] * 3
    counts = ledger_counts(get_settings().database_url)
    assert {mid: counts.get(mid, 0) for mid in ids} == dict.fromkeys(ids, 1)
    assert ledger_counts(get_settings().database_url, provider="up") == {}
