"""Billing period calendars (issue 12, item 3): where a period starts and ends, in the merchant's time zone."""

from __future__ import annotations

import datetime as dt

import pytest

from schema.models import Merchant
from worker.policy.periods import Period, credits_drawn, current_period, period_of

D = dt.date


@pytest.mark.parametrize(("kind", "day", "local", "expected"), [
    ("MONTHLY", 1, D(2026, 4, 30), Period(D(2026, 4, 1), D(2026, 5, 1))),
    ("MONTHLY", 1, D(2026, 5, 1), Period(D(2026, 5, 1), D(2026, 6, 1))),
    ("MONTHLY", 15, D(2026, 4, 14), Period(D(2026, 3, 15), D(2026, 4, 15))),
    ("MONTHLY", 15, D(2026, 4, 15), Period(D(2026, 4, 15), D(2026, 5, 15))),
    ("MONTHLY", 1, D(2026, 12, 31), Period(D(2026, 12, 1), D(2027, 1, 1))),
    ("MONTHLY", 10, D(2027, 1, 3), Period(D(2026, 12, 10), D(2027, 1, 10))),
    ("QUARTERLY", 1, D(2026, 6, 30), Period(D(2026, 4, 1), D(2026, 7, 1))),
    ("QUARTERLY", 5, D(2026, 1, 4), Period(D(2025, 10, 5), D(2026, 1, 5))),
    ("YEARLY", 1, D(2026, 12, 31), Period(D(2026, 1, 1), D(2027, 1, 1))),
    ("WEEKLY", 1, D(2026, 12, 2), Period(D(2026, 11, 30), D(2026, 12, 7))),  # a Wednesday; weeks from Monday
    ("WEEKLY", 3, D(2026, 12, 1), Period(D(2026, 11, 25), D(2026, 12, 2))),  # from Wednesdays
])
def test_period_of(kind: str, day: int, local: dt.date, expected: Period) -> None:
    assert period_of(kind, day, local) == expected


def test_the_boundary_is_midnight_in_the_merchants_time_zone() -> None:
    berlin = Merchant(timezone="Europe/Berlin", billing_period="MONTHLY", billing_day=1)
    new_york = Merchant(timezone="America/New_York", billing_period="MONTHLY", billing_day=1)
    at = dt.datetime(2026, 4, 30, 23, 30, tzinfo=dt.UTC)  # 01:30 on 1 May in Berlin, 19:30 on 30 April in New York

    assert current_period(berlin, at).start == D(2026, 5, 1)
    assert current_period(new_york, at).start == D(2026, 4, 1)


@pytest.mark.parametrize(("limit", "credits", "used", "drawn"), [
    (10, 5, 3, 0), (10, 5, 10, 0), (10, 5, 12, 2), (10, 5, 15, 5), (0, 5, 4, 4),
])
def test_limits_are_spent_before_credits(limit: int, credits: int, used: int, drawn: int) -> None:
    assert credits_drawn(limit, credits, used) == drawn
