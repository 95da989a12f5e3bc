"""Cost per message (issue 12, item 6): recorded at acceptance from the configured price table, replaced by the
provider's own price when its answer states one, repriced when a call settles on its real minutes, and added up by
the usage report (providerCost, markup, finalCharges)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from providers.base import DeliveryEvent, DeliveryStatus, OutboundMessage, SendResult
from providers.simulated import SimulatedProvider
from schema.models import Message
from worker.db import session_scope

from factories import Tenant, make_merchant, make_tenant, sms

PRICES = {"SMS": 70_000, "VOICE": 20_000, "EMAIL": 100}
TWO_SEGMENTS = "Your class moved to 6 pm today. " * 6  # 192 GSM characters


@pytest.fixture
def priced(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenant]:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_UNIT_PRICES", json.dumps(PRICES))
    monkeypatch.setenv("HEXAVOX_MARKUP_PERCENT", "50")
    reset_settings()
    tenant = make_tenant()
    make_merchant(tenant)
    yield tenant
    reset_settings()


def _send(task: str, payload: dict[str, Any]) -> str:
    from worker.runner import run_send_job

    row = run_send_job(task, payload, str(uuid.uuid4())).result["messages"][0]
    assert row["status"] == "QUEUED", row
    return str(row["messageId"])


def _cost(message_id: str) -> tuple[int, bool]:
    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return int(message.cost_micros), bool(message.provider_priced)


def _dispatch(message_id: str, **simulator: Any) -> None:
    from worker.policy.dispatch import DispatchStep, dispatch_message
    from worker.settings import get_settings

    settings = get_settings()
    provider = SimulatedProvider.from_options("simulated", simulator, settings)

    def sender(message: OutboundMessage, _names: list[str]) -> SendResult:
        return provider.send(message)

    assert dispatch_message(message_id, settings, sender) == DispatchStep.SENT


def _report(tenant: Tenant) -> dict[str, Any]:
    from worker.policy.usage import usage_report
    from worker.settings import get_settings

    today = dt.datetime.now(dt.UTC).date()
    with session_scope() as session:
        return usage_report(session, tenant.tenant_id, "gym-a", today, today, prices=get_settings().unit_prices,
                            markup_percent=get_settings().markup_percent)


def test_an_accepted_message_costs_its_units_at_the_configured_price(priced: Tenant) -> None:
    message_id = _send("hexavox.sms.send.v1", sms(priced, body=TWO_SEGMENTS))

    assert _cost(message_id) == (2 * 70_000, False)


def test_the_providers_stated_price_wins_and_the_report_adds_up_real_costs(priced: Tenant) -> None:
    table_priced = _send("hexavox.sms.send.v1", sms(priced, body="Class moved to 6 pm"))
    provider_priced = _send("hexavox.sms.send.v1", sms(priced, body=TWO_SEGMENTS, to="+18135551235"))
    _dispatch(table_priced)  # a provider that states no price
    _dispatch(provider_priced, price_micros=45_000)  # 45,000 per segment, not the table's 70,000

    assert _cost(table_priced) == (70_000, False)
    assert _cost(provider_priced) == (90_000, True)
    report = _report(priced)
    assert report["channels"]["SMS"]["units"] == 3
    # 0.07 + 0.09 = 0.16 (not 3 units x 0.07 = 0.21), with 50 % markup
    assert (report["providerCost"], report["markup"], report["finalCharges"]) == ("0.16", "0.08", "0.24")
    assert (report["awsCost"], report["hqMarkup"]) == ("0.16", "0.08")


def test_a_call_is_repriced_on_its_real_minutes_unless_its_provider_priced_it(priced: Tenant) -> None:
    from worker.policy.delivery_reports import apply_event

    voice = {"auth": priced.auth, "merchantId": "gym-a", "to": "+18135551234", "text": "Your class starts soon"}
    calls = [_send("hexavox.voice.send.v1", {**voice, "to": to}) for to in ("+18135551234", "+18135551236")]
    _dispatch(calls[0])
    _dispatch(calls[1], price_micros=15_000)
    with session_scope() as session:
        refs = {m.id: m.provider_ref for m in session.query(Message).filter(Message.id.in_(calls))}
    for call in calls:
        with session_scope() as session:
            apply_event(session, DeliveryEvent(provider="simulated", status=DeliveryStatus.DELIVERED,
                                               provider_ref=refs[call], duration_seconds=150))

    assert _cost(calls[0]) == (3 * 20_000, False)  # 3 started minutes at the table price
    assert _cost(calls[1]) == (15_000, True)  # the provider's stated price stands
