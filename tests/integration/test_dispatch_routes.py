"""Dispatch through a merchant's provider order: failover on unavailable, never on ambiguous; the breaker opens
and writes a provider alert. Real PostgreSQL and Redis; simulated providers with their ledger."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import Tenant, make_merchant, make_tenant, sms, sms_job

PROVIDERS = {
    "down": {"driver": "simulated", "unavailable_rate": 1.0},
    "lossy": {"driver": "simulated", "ambiguous_rate": 1.0},
    "up": {"driver": "simulated"},
    "trickle": {"driver": "simulated", "max_rps": 0.01},  # one message every 100 s
}


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps(PROVIDERS))
    reset_settings()
    reset_providers()
    return make_tenant()


def _dispatch_all(tenant: Tenant, merchant: str, count: int, **fields: object) -> list[tuple[str, str]]:
    """Accept ``count`` messages and dispatch each once in this process; returns (step, message id) pairs."""
    from worker.policy.dispatch import dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    numbers = [f"+1813555{1000 + i}" for i in range(count)]
    to = numbers if count > 1 else numbers[0]
    outcome = run_send_job("hexavox.sms.send.v1", sms(tenant, merchantId=merchant, to=to, **fields), str(uuid.uuid4()))
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


def test_a_provider_that_keeps_losing_answers_opens_its_breaker_and_new_messages_fail_over(tenant: Tenant) -> None:
    # Given a merchant whose first provider loses every answer, then "up"
    from providers.simulated import ledger_counts
    from worker.settings import get_settings

    make_merchant(tenant, "gym-c", providers={"SMS": ["lossy", "up"]})
    # When eight messages are dispatched one after another
    steps = _dispatch_all(tenant, "gym-c", 8)
    # Then the first five (the breaker's threshold) are AMBIGUOUS at "lossy", the breaker opens, and the next
    # three go out through "up"; no message reached both providers
    assert [step for step, _ in steps] == ["AMBIGUOUS"] * 5 + ["SENT"] * 3
    ids = [mid for _, mid in steps]
    assert _providers_of(ids) == Counter({"lossy": 5, "up": 3})
    lossy = ledger_counts(get_settings().database_url, provider="lossy")
    up = ledger_counts(get_settings().database_url, provider="up")
    assert set(lossy) == set(ids[:5]) and set(up) == set(ids[5:])


def test_a_type_can_have_its_own_provider_order(tenant: Tenant) -> None:
    # Given SMS through "down" in general, but OTP through "up"
    make_merchant(tenant, "split", providers={"SMS": ["down"]}, providersByType={"SMS": {"OTP": ["up"]}})

    # When an OTP and a TXN message are dispatched
    otp = _dispatch_all(tenant, "split", 1, type="OTP", body="Your code is 482913")
    txn = _dispatch_all(tenant, "split", 1)

    # Then the OTP went out through its own route; the TXN waits on the channel's
    assert [step for step, _ in otp] == ["SENT"] and _providers_of([m for _, m in otp]) == Counter({"up": 1})
    assert [step for step, _ in txn] == ["RETRY"]


@pytest.mark.parametrize(("by_type", "why"), [
    ({"SMS": {"MARKETING": ["up"]}}, "SMS has no type MARKETING"),
    ({"EMAIL": {"TRANSACTIONAL": ["nowhere"]}}, "unknown or missing provider"),
    ({"VOICE": {"REMINDER": []}}, "unknown or missing provider"),
])
def test_a_per_type_order_must_fit_its_channel_and_name_known_providers(tenant: Tenant, by_type: dict[str, object],
                                                                         why: str) -> None:
    from worker.errors import ValidationError

    with pytest.raises(ValidationError, match=why) as refused:
        make_merchant(tenant, "bad", providersByType=by_type)
    assert refused.value.code.value == "E413" and refused.value.field == "providersByType"


def _row(message_id: str) -> tuple[str, str | None, int]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        msg = session.get(Message, message_id)
        assert msg is not None
        return msg.status, msg.error_code, msg.dispatch_attempts


def _sms_used(tenant: Tenant, merchant: str) -> int:
    from schema.models import Balance, Merchant
    from worker.db import session_scope

    with session_scope() as session:
        used = session.scalar(select(Balance.used).join(Merchant, Merchant.id == Balance.merchant_id)
                              .where(Merchant.external_id == merchant, Balance.channel == "SMS"))
    assert used is not None
    return int(used)


def test_every_provider_unavailable_waits_without_counting_as_a_crash_then_fails_e816(tenant: Tenant) -> None:
    # Given a merchant whose only provider is down, and a message that sat in a backlog for two hours
    import datetime as dt

    from sqlalchemy import update

    from schema.models import Message
    from worker.db import session_scope
    from worker.policy.dispatch import give_up_unavailable

    make_merchant(tenant, "downonly", providers={"SMS": ["down"]})
    [(step, mid)] = _dispatch_all(tenant, "downonly", 1)
    assert step == "RETRY" and _sms_used(tenant, "downonly") == 1
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == mid)
                        .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)))
    first_unavailable = time.time()

    # When it has waited less than the give-up window since the outage began (its age does not count), it stays
    # QUEUED, and the clean delivery is not counted as a crash
    assert not give_up_unavailable(mid, 600, first_unavailable)
    assert _row(mid) == ("QUEUED", None, 0)

    # Then past the window it fails with E816 and its unit goes back, once
    assert give_up_unavailable(mid, 600, first_unavailable - 601)
    assert _row(mid)[:2] == ("FAILED", "E816") and _sms_used(tenant, "downonly") == 0
    assert not give_up_unavailable(mid, 600, first_unavailable - 601)


def test_a_message_beyond_the_throughput_limit_waits_for_its_slot(tenant: Tenant) -> None:
    # Given a provider that takes one message every 100 s
    make_merchant(tenant, "slowlane", providers={"SMS": ["trickle"]})
    # When two messages are dispatched, Then the first goes and the second waits for a slot (no give-up clock)
    steps = _dispatch_all(tenant, "slowlane", 2)
    assert [step for step, _ in steps] == ["SENT", "THROTTLED"]
    assert _row(steps[1][1]) == ("QUEUED", None, 0)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_burst_above_the_throughput_limit_is_delayed_never_failed(hexavox_env: dict[str, str],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    # Given a provider that takes 2 messages a second, and a worker with more threads than that
    from schema.models import Message
    from worker.client import HexavoxClient
    from worker.db import session_scope
    from worker.queues import ALL_QUEUES

    from support import start_worker

    env = {**hexavox_env, "HEXAVOX_PROVIDERS": json.dumps({"slow": {"driver": "simulated", "max_rps": 2}}),
           "HEXAVOX_DEFAULT_PROVIDER": "slow"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _reset_provider_settings()
    tenant = make_tenant()
    make_merchant(tenant)
    worker = start_worker(env, tmp_path / "worker.log", queues=",".join(ALL_QUEUES), pool="threads", concurrency=16)
    try:
        # When 50 messages arrive at once (25 s of the provider's capacity, far past a few quick retries)
        client = HexavoxClient(tenant.key_id, tenant.secret)
        try:
            numbers = [f"+1813555{2000 + i}" for i in range(50)]
            answer = client.result(client.send_sms(**sms_job(tenant, to=numbers)), timeout=60)
        finally:
            client.close()
        ids = [row["messageId"] for row in answer["messages"]]
        assert len(ids) == 50

        # Then every one is sent, in its turn, and none failed for want of a provider
        states: Counter[str] = Counter()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope() as session:
                states = Counter(session.scalars(select(Message.status).where(Message.id.in_(ids))))
            if states["SENT"] + states["DELIVERED"] == 50 or states["FAILED"]:
                break
            time.sleep(0.5)
        assert states["SENT"] + states["DELIVERED"] == 50, states
    finally:
        worker.stop()


def _reset_provider_settings() -> None:
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    reset_settings()
    reset_providers()
