"""Reconcile settles a call's real minutes from a status lookup, as a delivery report would (SPEC 4, charges at FINAL).

A voice job reserves minutes estimated from its text. When the provider's answer is lost (AMBIGUOUS) and no report
ever comes, reconcile's lookup is the only place the billed duration arrives: the message must end DELIVERED with
the real minutes, and the balance must move from the estimate to them exactly once, however many sweeps run.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from providers.base import Provider, ProviderRef
from providers.registry import get_provider
from providers.simulated import SimulatedProvider, ledger_calls
from schema.models import Balance, Message
from worker.db import session_scope
from worker.policy.dispatch import DispatchStep, dispatch_message
from worker.policy.reconcile import sweep
from worker.sending import provider_sender
from worker.settings import get_settings

from factories import make_merchant, make_tenant

VOICE_TASK = "hexavox.voice.send.v1"
#: 2,860 characters: four started minutes of synthesised speech (900 a minute); a simulated call lasts under one.
LONG_TEXT = "Your appointment at the clinic is tomorrow at nine. " * 55


@pytest.fixture
def lossy_voice(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every call reaches the simulated provider, whose answer is then lost."""
    monkeypatch.setenv("HEXAVOX_SIMULATOR_AMBIGUOUS_RATE", "1")
    return hexavox_env


def providers_for(names: list[str]) -> list[Provider]:
    return [get_provider(name, get_settings()) for name in names]


def voice_call(payload: dict[str, Any]) -> dict[str, Any]:
    from worker.runner import run_send_job

    row: dict[str, Any] = run_send_job(VOICE_TASK, payload, str(uuid.uuid4())).result["messages"][0]
    assert row["status"] == "QUEUED", row
    return row


def voice_used(merchant_id: int) -> int:
    with session_scope() as session:
        value = session.scalar(select(Balance.used).where(Balance.merchant_id == merchant_id,
                                                          Balance.channel == "VOICE"))
    assert value is not None
    return int(value)


def test_reconcile_settles_an_ambiguous_call_at_its_real_minutes_once(lossy_voice: dict[str, str]) -> None:
    # Given a call reserved at its estimated minutes whose send came back AMBIGUOUS
    tenant = make_tenant()
    merchant_id = make_merchant(tenant, voice=100)
    row = voice_call({"auth": tenant.auth, "merchantId": "gym-a", "to": "+18135551234", "text": LONG_TEXT,
                      "type": "REMINDER"})
    estimate = row["units"]
    assert estimate == math.ceil(len(LONG_TEXT) / 900) and voice_used(merchant_id) == estimate
    settings = get_settings()
    assert dispatch_message(row["messageId"], settings, provider_sender(settings)) == DispatchStep.AMBIGUOUS

    # When reconcile sweeps, more than once
    first, _ = sweep(settings, providers_for)
    again, _ = sweep(settings, providers_for)

    # Then the call is DELIVERED at the minutes the provider bills, and only the difference went back, once
    provider = get_provider("simulated", settings)
    assert isinstance(provider, SimulatedProvider)
    billed = provider.fetch_status(ProviderRef(row["messageId"])).duration_seconds
    assert billed is not None
    minutes = math.ceil(billed / 60)
    with session_scope() as session:
        message = session.get(Message, row["messageId"])
        assert message is not None
        assert (message.status, message.freshness, message.units) == ("DELIVERED", "FINAL", minutes)
    assert minutes < estimate and voice_used(merchant_id) == minutes
    assert (first.settled, again.examined) == (1, 0)
    assert len(ledger_calls(provider.config.ledger_url, row["messageId"])) == 1  # looked up, never resent
