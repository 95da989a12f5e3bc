"""Limits per billing period (issue 12, item 3), on real PostgreSQL: usage starts again at the boundary (midnight in
the merchant's time zone), the closed period is kept, unused credits carry over, a message accepted just before the
boundary stays charged to its own period (also when it fails after it), alerts and reports follow periods, and the
rollover stays race-free."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
import zoneinfo
from typing import Any

from sqlalchemy import select, update

from schema.models import Alert, Balance, Merchant, Message, UsagePeriod
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.periods import current_period
from worker.policy.quota import add_credits, release_units, reserve_units

from factories import Tenant, make_merchant, make_tenant, sms

TZ = "America/New_York"
SMS = "hexavox.sms.send.v1"


def _merchant(tenant: Tenant, **fields: Any) -> int:
    return make_merchant(tenant, timezone=TZ, **fields)


def _boundary(merchant_pk: int) -> dt.datetime:
    """The end of the merchant's current period: local midnight, as an aware UTC datetime."""
    with session_scope() as session:
        merchant = session.get(Merchant, merchant_pk)
        assert merchant is not None
        end = current_period(merchant, dt.datetime.now(dt.UTC)).end
    return dt.datetime.combine(end, dt.time(), tzinfo=zoneinfo.ZoneInfo(TZ)).astimezone(dt.UTC)


def _accept(tenant: Tenant, now: dt.datetime, **fields: Any) -> dict[str, Any]:
    from worker.policy.intake import accept_send

    with session_scope() as session:
        return accept_send(session, SMS, sms(tenant, **fields), str(uuid.uuid4()), None, now=now,
                           window_seconds=0).result


def _balance(merchant_pk: int) -> tuple[int, int, dt.date]:
    with session_scope() as session:
        balance = session.get(Balance, (merchant_pk, "SMS"))
        assert balance is not None
        return int(balance.used), int(balance.credits), balance.period_start


def _history(merchant_pk: int) -> list[tuple[dt.date, dt.date, int, int, int]]:
    with session_scope() as session:
        rows = session.scalars(select(UsagePeriod).where(UsagePeriod.merchant_id == merchant_pk)).all()
        return [(r.period_start, r.period_end, int(r.unit_limit), int(r.credits), int(r.used)) for r in rows]


def _second(delta: int, boundary: dt.datetime) -> dt.datetime:
    return boundary + dt.timedelta(seconds=delta)


def test_usage_starts_again_at_the_boundary_and_the_old_period_is_kept(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_pk = _merchant(tenant, sms=2)
    with session_scope() as session:
        add_credits(session, merchant_pk, "SMS", 3)
    boundary = _boundary(merchant_pk)
    old_start = _balance(merchant_pk)[2]

    before = [_accept(tenant, _second(-1, boundary), to=f"+1813555123{n}") for n in range(4)]  # 2 limit + 2 credits
    after = _accept(tenant, _second(1, boundary), to="+18135551239")

    assert [answer["status"] for answer in before] == ["ACCEPTED"] * 4
    assert after["status"] == "ACCEPTED"
    new_start = boundary.astimezone(zoneinfo.ZoneInfo(TZ)).date()
    # the old period is history: limit 2, credits 3, used 4 (2 credits drawn)
    assert _history(merchant_pk) == [(old_start, new_start, 2, 3, 4)]
    # the new period starts from 0 (plus the message after the boundary) with the one unused credit carried over
    assert _balance(merchant_pk) == (1, 1, new_start)
    with session_scope() as session:
        periods = dict(session.execute(select(Message.recipient, Message.period_start)).tuples().all())
    assert periods["+18135551230"] == old_start and periods["+18135551239"] == new_start


def test_a_message_accepted_just_before_the_boundary_is_refunded_to_its_own_period(
        hexavox_env: dict[str, str]) -> None:
    from worker.policy.dispatch import give_up_unavailable

    tenant = make_tenant()
    merchant_pk = _merchant(tenant, sms=1)
    with session_scope() as session:
        add_credits(session, merchant_pk, "SMS", 1)
    boundary = _boundary(merchant_pk)
    last_second = [_accept(tenant, _second(-1, boundary), to=f"+1813555124{n}") for n in range(2)]  # 1 draws a credit
    _accept(tenant, _second(5, boundary), to="+18135551249")
    assert _balance(merchant_pk)[:2] == (1, 0)  # new period: 1 used, no credit left to carry

    # the message that drew the old period's credit finally fails after the boundary
    failed = last_second[1]["messages"][0]["messageId"]
    assert give_up_unavailable(failed, 0, 0)

    [(_start, _end, _limit, _credits, used)] = _history(merchant_pk)
    assert used == 1  # taken off the old period ...
    assert _balance(merchant_pk)[:2] == (1, 1)  # ... not off the new one, and its credit is back (it carries over)


def test_a_refund_while_the_period_is_current_goes_to_the_balance(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_pk = _merchant(tenant, sms=5)
    answer = _accept(tenant, dt.datetime.now(dt.UTC))
    with session_scope() as session:
        release_units(session, merchant_pk, "SMS", 1, message_id=answer["messages"][0]["messageId"])

    assert _balance(merchant_pk)[0] == 0 and _history(merchant_pk) == []


def test_usage_alerts_fire_again_in_each_period(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_pk = _merchant(tenant, sms=5)
    boundary = _boundary(merchant_pk)
    for when in (-1, 1):
        for n in range(4):  # 4 of 5: crosses 80 %
            assert _accept(tenant, _second(when, boundary), to=f"+1813555125{n}")["status"] == "ACCEPTED"

    with session_scope() as session:
        alerts = session.scalars(select(Alert).where(Alert.kind == "USAGE_80")).all()
        periods = sorted(alert.detail["periodStart"] for alert in alerts)
    assert len(periods) == 2 and periods[0] < periods[1]


def test_merchant_view_and_usage_report_show_periods(hexavox_env: dict[str, str]) -> None:
    from worker.policy.merchants import merchant_view
    from worker.policy.usage import usage_report

    tenant = make_tenant()
    merchant_pk = _merchant(tenant, sms=5, billingPeriod="WEEKLY", billingDay=1)
    with session_scope() as session:
        merchant = session.get(Merchant, merchant_pk)
        assert merchant is not None
        reserve_units(session, merchant, "SMS", 3, dt.datetime.now(dt.UTC))
        # back-date the balance a week: as if the week had ended with 3 used
        started = session.get(Balance, (merchant_pk, "SMS")).period_start  # type: ignore[union-attr]
        session.execute(update(Balance).where(Balance.merchant_id == merchant_pk)
                        .values(period_start=started - dt.timedelta(days=7)))
    with session_scope() as session:
        merchant = session.get(Merchant, merchant_pk)
        assert merchant is not None
        view = merchant_view(session, merchant)
        report = usage_report(session, tenant.tenant_id, "gym-a", started - dt.timedelta(days=7), started,
                              prices={"SMS": 1, "VOICE": 1, "EMAIL": 1}, markup_percent=0)

    usage = view["usage"]
    assert isinstance(usage, dict) and usage["smsUsed"] == 0 and usage["periodStart"] == started.isoformat()
    assert (view["billingPeriod"], view["billingDay"]) == ("WEEKLY", 1)
    assert [(p["periodStart"], p["current"], p["SMS"]["used"]) for p in report["periods"]] == [
        (started.isoformat(), True, 0), ((started - dt.timedelta(days=7)).isoformat(), False, 3)]


def test_concurrent_first_charges_after_the_boundary_roll_once_and_never_overspend(
        hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_pk = _merchant(tenant, sms=10)
    boundary = _boundary(merchant_pk)
    with session_scope() as session:
        merchant = session.get(Merchant, merchant_pk)
        assert merchant is not None
        reserve_units(session, merchant, "SMS", 7, _second(-1, boundary))
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def charge() -> None:
        start.wait()
        try:
            with session_scope() as session:
                merchant = session.get(Merchant, merchant_pk)
                assert merchant is not None
                reserve_units(session, merchant, "SMS", 1, _second(1, boundary))
            outcomes.append("ok")
        except Refusal as refusal:
            outcomes.append(refusal.code.value)

    threads = [threading.Thread(target=charge) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("ok") == 10 and outcomes.count(Code.INSUFFICIENT_BALANCE.value) == 6
    assert [row[4] for row in _history(merchant_pk)] == [7]
    assert _balance(merchant_pk)[0] == 10
