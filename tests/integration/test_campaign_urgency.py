"""Campaign batches while an OTP is in flight: sent in smaller parts, each waiting (bounded) for the OTP, and still
every message sent exactly once (in-process, real PostgreSQL and Redis)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from factories import Tenant, make_merchant, make_tenant, opt, sms

SMS = "hexavox.sms.send.v1"


@pytest.fixture
def tenant(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tenant:
    from worker import urgency
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "10")
    reset_settings()
    urgency.reset()
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=10_000)
    return tenant


def _queued_campaign(tenant: Tenant, count: int) -> list[str]:
    from schema.models import Campaign
    from tasks.campaigns import run_campaign_chunk
    from worker.db import session_scope
    from worker.runner import run_send_job

    contacts = [f"+1813555{n:04d}" for n in range(2000, 2000 + count)]
    for contact in contacts:
        opt(tenant, "gym-a", "SMS", contact)
    answer = run_send_job(SMS, sms(tenant, to=contacts, type="MKT"), str(uuid.uuid4())).result
    with session_scope() as session:
        row = session.scalars(select(Campaign).where(Campaign.request_id == answer["campaign"]["campaignId"])).one()
    return [mid for mid, _, _ in run_campaign_chunk(row.id, 0).to_dispatch]


def _counting_bulk(settings: Any) -> tuple[Any, list[int]]:
    """The configured bulk sender, noting the size of every part it is handed."""
    from worker.sending import provider_bulk_sender

    real_bulk = provider_bulk_sender(settings)
    assert real_bulk is not None
    parts: list[int] = []

    def bulk(messages: list[Any], names: list[str]) -> Any:
        parts.append(len(messages))
        return real_bulk(messages, names)

    return bulk, parts


def test_a_batch_goes_in_parts_behind_an_otp_in_flight_and_sends_each_message_once(
        tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    from providers.simulated import ledger_counts
    from worker import urgency
    from worker.policy.dispatch_batch import dispatch_batch
    from worker.sending import provider_sender
    from worker.settings import get_settings

    # Given ten queued campaign messages, and parts of 3 with a 30 ms bound while OTPs are about
    ids = _queued_campaign(tenant, 10)
    assert len(ids) == 10
    settings = replace(get_settings(), urgent_bulk_batch=3, urgent_yield_ms=30)
    bulk, parts = _counting_bulk(settings)

    # When the batch runs while an OTP is in flight the whole time
    started = time.monotonic()
    with urgency.urgent(settings):
        outcome = dispatch_batch(ids, settings, provider_sender(settings), redelivered=False, bulk=bulk)
    took = time.monotonic() - started
    # Then it went in parts of 3, each step waiting its bound (4 parts x 3 waits x 30 ms), not longer than a bound
    assert parts == [3, 3, 3, 1]
    assert took >= 4 * 3 * 0.03
    # And every message was sent once
    assert outcome.steps == {"SENT": 10}
    calls = ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"])
    assert {mid: calls.get(mid, 0) for mid in ids} == dict.fromkeys(ids, 1)


def test_without_urgent_traffic_a_batch_goes_whole_at_once(tenant: Tenant, hexavox_env: dict[str, str]) -> None:
    from worker.policy.dispatch_batch import dispatch_batch
    from worker.sending import provider_sender
    from worker.settings import get_settings

    ids = _queued_campaign(tenant, 10)
    settings = replace(get_settings(), urgent_bulk_batch=3, urgent_yield_ms=1000)
    bulk, parts = _counting_bulk(settings)

    started = time.monotonic()
    outcome = dispatch_batch(ids, settings, provider_sender(settings), redelivered=False, bulk=bulk)
    assert parts == [10]
    assert time.monotonic() - started < 1.0  # no wait at the 1 s bound
    assert outcome.steps == {"SENT": 10}
