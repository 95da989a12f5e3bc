"""Quota on a real database: the reserve/release/credit conditions touch one merchant's one channel only,
the boundaries of every comparison, call minutes, and the 80 %/100 % alerts (once per channel and period)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from schema.models import Alert, Balance, Merchant
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.quota import add_credits, billed_minutes, release_units, reserve_units, settle_voice_minutes

from factories import Tenant

CHANNELS = ("SMS", "VOICE", "EMAIL")


def balances(*merchants: int) -> dict[tuple[int, str], tuple[int, int, int]]:
    """(merchant, channel) -> (limit, credits, used) for every balance row of ``merchants``."""
    with session_scope() as session:
        rows = session.scalars(select(Balance).where(Balance.merchant_id.in_(merchants)))
        return {(b.merchant_id, b.channel): (b.unit_limit, b.credits, b.used) for b in rows}


def set_used(merchant_id: int, channel: str, used: int, **values: Any) -> None:
    with session_scope() as session:
        session.execute(update(Balance).where(Balance.merchant_id == merchant_id, Balance.channel == channel)
                        .values(used=used, **values))


def reserve(merchant_id: int, channel: str, units: int) -> None:
    with session_scope() as session:
        merchant = session.get(Merchant, merchant_id)
        assert merchant is not None
        reserve_units(session, merchant, channel, units)


def release(merchant_id: int, channel: str, units: int) -> None:
    with session_scope() as session:
        release_units(session, merchant_id, channel, units)


def alerts() -> list[tuple[int | None, int | None, str, str, dict[str, Any]]]:
    with session_scope() as session:
        rows = session.scalars(select(Alert).order_by(Alert.id))
        return [(a.tenant_id, a.merchant_id, a.kind, a.dedupe_key, dict(a.detail)) for a in rows]


def untouched(before: dict[tuple[int, str], tuple[int, int, int]], *changed: tuple[int, str]) -> None:
    """Every balance row except ``changed`` is as it was."""
    after = balances(*{merchant for merchant, _ in before})
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}


# -- reserve ---------------------------------------------------------------------------------------------------------

def test_reserving_the_last_unit_of_limit_and_credits_is_accepted_and_one_more_refused(gym_a: int, gym_b: int) -> None:
    set_used(gym_a, "SMS", 0, credits=2)
    before = balances(gym_a, gym_b)
    reserve(gym_a, "SMS", 12)  # limit 10 + credits 2, exactly
    assert balances(gym_a)[(gym_a, "SMS")] == (10, 2, 12)
    untouched(before, (gym_a, "SMS"))
    with pytest.raises(Refusal) as caught:
        reserve(gym_a, "SMS", 1)
    assert caught.value.as_dict() == {"code": Code.INSUFFICIENT_BALANCE.value, "name": "INSUFFICIENT_BALANCE",
                                      "detail": "not enough SMS units left", "field": "to"}
    assert balances(gym_a)[(gym_a, "SMS")] == (10, 2, 12)


def test_a_reservation_charges_only_its_own_merchant_and_channel(gym_a: int, gym_b: int) -> None:
    before = balances(gym_a, gym_b)
    reserve(gym_b, "VOICE", 3)
    assert balances(gym_b)[(gym_b, "VOICE")] == (10, 0, 3)
    untouched(before, (gym_b, "VOICE"))


def test_another_merchants_room_does_not_let_a_full_one_reserve(gym_a: int, gym_b: int) -> None:
    set_used(gym_a, "SMS", 10)
    with pytest.raises(Refusal) as caught:
        reserve(gym_a, "SMS", 1)
    assert (caught.value.code, caught.value.field) == (Code.INSUFFICIENT_BALANCE, "to")
    assert balances(gym_b)[(gym_b, "SMS")] == (10, 0, 0)


def test_a_merchant_without_a_balance_row_is_refused_not_crashed(gym_a: int) -> None:
    with session_scope() as session:
        session.execute(delete(Balance).where(Balance.merchant_id == gym_a, Balance.channel == "VOICE"))
    with pytest.raises(Refusal) as caught:
        reserve(gym_a, "VOICE", 1)
    assert caught.value.as_dict() == {"code": Code.INSUFFICIENT_BALANCE.value, "name": "INSUFFICIENT_BALANCE",
                                      "detail": "not enough VOICE units left", "field": "to"}
    release(gym_a, "VOICE", 1)  # nothing to give back to: no error, no row
    with pytest.raises(Refusal) as caught:
        with session_scope() as session:
            add_credits(session, gym_a, "VOICE", 5)
    assert caught.value.as_dict() == {"code": Code.MERCHANT_NOT_FOUND.value, "name": "MERCHANT_NOT_FOUND",
                                      "detail": "merchant has no balance for this channel"}
    assert caught.value.field is None
    assert (gym_a, "VOICE") not in balances(gym_a)


# -- release ---------------------------------------------------------------------------------------------------------

def test_releasing_everything_used_goes_back_to_zero_for_that_row_only(gym_a: int, gym_b: int) -> None:
    for merchant in (gym_a, gym_b):
        for channel in CHANNELS:
            set_used(merchant, channel, 4)
    before = balances(gym_a, gym_b)
    release(gym_a, "SMS", 4)
    assert balances(gym_a)[(gym_a, "SMS")] == (10, 0, 0)
    untouched(before, (gym_a, "SMS"))


def test_releasing_more_than_was_used_changes_nothing(gym_a: int) -> None:
    set_used(gym_a, "SMS", 3)
    release(gym_a, "SMS", 4)
    assert balances(gym_a)[(gym_a, "SMS")] == (10, 0, 3)


@pytest.mark.parametrize("units", (0, -2))
def test_releasing_nothing_or_a_negative_amount_changes_nothing(gym_a: int, units: int) -> None:
    set_used(gym_a, "SMS", 3)
    release(gym_a, "SMS", units)
    assert balances(gym_a)[(gym_a, "SMS")] == (10, 0, 3)


def test_releasing_one_unit_gives_back_exactly_one(gym_a: int) -> None:
    set_used(gym_a, "SMS", 3)
    release(gym_a, "SMS", 1)
    assert balances(gym_a)[(gym_a, "SMS")] == (10, 0, 2)


# -- credits ---------------------------------------------------------------------------------------------------------

def test_credits_go_to_one_merchants_one_channel_and_the_new_total_is_returned(gym_a: int, gym_b: int) -> None:
    before = balances(gym_a, gym_b)
    with session_scope() as session:
        assert add_credits(session, gym_a, "VOICE", 5) == 5
    with session_scope() as session:
        assert add_credits(session, gym_a, "VOICE", 7) == 12
    assert balances(gym_a)[(gym_a, "VOICE")] == (10, 12, 0)
    untouched(before, (gym_a, "VOICE"))


# -- call minutes ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "minutes"),
                         ((0, 0), (1, 1), (59, 1), (60, 1), (61, 2), (119, 2), (120, 2), (121, 3), (None, None),
                          (-1, None)))
def test_calls_are_billed_by_started_minute(seconds: int | None, minutes: int | None) -> None:
    assert billed_minutes(seconds) == minutes


def settle(merchant_id: int | None, reserved: int, minutes: int) -> None:
    with session_scope() as session:
        settle_voice_minutes(session, merchant_id, reserved, minutes, "msg-1")


def test_a_shorter_call_gives_back_the_difference(gym_a: int, gym_b: int) -> None:
    set_used(gym_a, "VOICE", 5)
    set_used(gym_b, "VOICE", 5)
    settle(gym_a, 3, 1)
    assert balances(gym_a, gym_b)[(gym_a, "VOICE")] == (10, 0, 3)
    assert balances(gym_b)[(gym_b, "VOICE")] == (10, 0, 5)


def test_a_longer_call_charges_the_overrun(gym_a: int) -> None:
    set_used(gym_a, "VOICE", 5)
    settle(gym_a, 1, 3)
    assert balances(gym_a)[(gym_a, "VOICE")] == (10, 0, 7)


def test_an_exact_estimate_or_no_merchant_changes_nothing(gym_a: int) -> None:
    set_used(gym_a, "VOICE", 5)
    settle(gym_a, 2, 2)
    settle(None, 1, 3)
    assert balances(gym_a)[(gym_a, "VOICE")] == (10, 0, 5)


def test_an_overrun_the_balance_cannot_cover_is_logged_and_not_charged(gym_a: int,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    set_used(gym_a, "VOICE", 9)
    with caplog.at_level(logging.WARNING, logger="worker.policy.quota"):
        settle(gym_a, 1, 4)
    assert balances(gym_a)[(gym_a, "VOICE")] == (10, 0, 9)
    assert [r.getMessage() for r in caplog.records] == [
        f"voice message msg-1 ran 3 minute(s) over what the balance of merchant {gym_a} covers; not charged"]


def test_an_overrun_for_a_merchant_deleted_since_is_dropped(gym_a: int) -> None:
    with session_scope() as session:
        session.execute(delete(Merchant).where(Merchant.id == gym_a))
    settle(gym_a, 1, 3)  # no merchant, no balance: nothing to charge and no error


# -- alerts ----------------------------------------------------------------------------------------------------------

def period_of(merchant_id: int) -> str:
    with session_scope() as session:
        balance = session.get(Balance, (merchant_id, "SMS"))
        assert balance is not None
        return balance.period_start.isoformat()


def test_crossing_80_and_100_percent_writes_one_alert_each_with_its_detail(tenant: Tenant, gym_a: int) -> None:
    reserve(gym_a, "SMS", 7)
    assert alerts() == []  # 70 %
    reserve(gym_a, "SMS", 1)  # 80 % exactly
    period = period_of(gym_a)
    first = (tenant.tenant_id, gym_a, "USAGE_80", f"usage:{gym_a}:SMS:{period}:80",
             {"channel": "SMS", "used": 8, "limit": 10, "percent": 80, "periodStart": period})
    assert alerts() == [first]
    reserve(gym_a, "SMS", 1)  # 90 %: nothing new
    assert alerts() == [first]
    reserve(gym_a, "SMS", 1)  # 100 %
    assert alerts() == [first, (tenant.tenant_id, gym_a, "USAGE_100", f"usage:{gym_a}:SMS:{period}:100",
                                {"channel": "SMS", "used": 10, "limit": 10, "percent": 100, "periodStart": period})]


def test_a_threshold_is_the_exact_percentage_of_the_limit(tenant: Tenant) -> None:
    from factories import make_merchant

    merchant = make_merchant(tenant, "big", sms=1000)
    reserve(merchant, "SMS", 799)  # 79.9 %
    assert alerts() == []
    reserve(merchant, "SMS", 1)
    assert [kind for _, _, kind, _, _ in alerts()] == ["USAGE_80"]
    reserve(merchant, "SMS", 199)  # 99.9 % is not 100 %
    assert [kind for _, _, kind, _, _ in alerts()] == ["USAGE_80"]
    reserve(merchant, "SMS", 1)
    assert [kind for _, _, kind, _, _ in alerts()] == ["USAGE_80", "USAGE_100"]


def test_one_reservation_crossing_both_thresholds_writes_both(gym_a: int) -> None:
    reserve(gym_a, "SMS", 10)
    assert [kind for _, _, kind, _, _ in alerts()] == ["USAGE_80", "USAGE_100"]


def test_a_one_unit_plan_still_alerts(tenant: Tenant) -> None:
    from factories import make_merchant

    merchant = make_merchant(tenant, "tiny", sms=1)
    reserve(merchant, "SMS", 1)
    assert [(kind, detail["used"], detail["limit"]) for _, _, kind, _, detail in alerts()] == [
        ("USAGE_80", 1, 1), ("USAGE_100", 1, 1)]


def test_credits_alone_raise_no_usage_alert(tenant: Tenant) -> None:
    from factories import make_merchant

    merchant = make_merchant(tenant, "prepaid", sms=0)
    set_used(merchant, "SMS", 0, credits=5)
    reserve(merchant, "SMS", 5)
    assert alerts() == []


def test_usage_above_the_limit_on_credits_alerts_no_more(gym_a: int) -> None:
    set_used(gym_a, "SMS", 10, credits=5)
    reserve(gym_a, "SMS", 5)
    assert alerts() == []


def test_sms_and_voice_crossing_80_percent_in_one_period_each_alert(gym_a: int) -> None:
    reserve(gym_a, "SMS", 8)
    reserve(gym_a, "VOICE", 8)
    assert [(kind, detail["channel"]) for _, _, kind, _, detail in alerts()] == [("USAGE_80", "SMS"),
                                                                                ("USAGE_80", "VOICE")]


def test_two_merchants_crossing_80_percent_each_alert(gym_a: int, gym_b: int) -> None:
    reserve(gym_a, "SMS", 8)
    reserve(gym_b, "SMS", 8)
    assert [(merchant, kind) for _, merchant, kind, _, _ in alerts()] == [(gym_a, "USAGE_80"), (gym_b, "USAGE_80")]


def test_a_new_period_alerts_again(gym_a: int) -> None:
    reserve(gym_a, "SMS", 8)
    next_period = dt.date.fromisoformat(period_of(gym_a)) + dt.timedelta(days=40)
    set_used(gym_a, "SMS", 0, period_start=next_period.replace(day=1))
    reserve(gym_a, "SMS", 8)
    found = alerts()
    assert [kind for _, _, kind, _, _ in found] == ["USAGE_80", "USAGE_80"]
    assert found[1][4]["periodStart"] == next_period.replace(day=1).isoformat()
