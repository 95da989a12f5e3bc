"""Scheduled times: both formats, merchant zones, DST gaps and folds, and the 15 min - 3 month window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.schedule import add_months, parse_schedule

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)

accepted = (
    # (raw, merchant zone, expected instant in UTC)
    ("20-03-2025 12:15:00", "UTC", datetime(2025, 3, 20, 12, 15, tzinfo=UTC)),
    ("21-03-2025 09:00:00", "Asia/Kolkata", datetime(2025, 3, 21, 3, 30, tzinfo=UTC)),
    ("21-03-2025 09:00:00", "America/New_York", datetime(2025, 3, 21, 13, 0, tzinfo=UTC)),
    ("2025-03-21T09:00:00", "Asia/Kolkata", datetime(2025, 3, 21, 3, 30, tzinfo=UTC)),  # naive ISO: merchant zone
    ("2025-03-21 09:00", "UTC", datetime(2025, 3, 21, 9, 0, tzinfo=UTC)),
    ("2025-03-21T09:00:00Z", "Asia/Kolkata", datetime(2025, 3, 21, 9, 0, tzinfo=UTC)),  # offset wins
    ("2025-03-21T09:00:00+02:00", "UTC", datetime(2025, 3, 21, 7, 0, tzinfo=UTC)),
    ("2025-03-21T09:00:00.250000-05:00", "UTC", datetime(2025, 3, 21, 14, 0, 0, 250000, tzinfo=UTC)),
    ("  21-03-2025 09:00:00 ", "UTC", datetime(2025, 3, 21, 9, 0, tzinfo=UTC)),
    # on London's spring-forward day, the first wall time after the skipped hour exists (BST)
    ("30-03-2025 02:00:00", "Europe/London", datetime(2025, 3, 30, 1, 0, tzinfo=UTC)),
    ("20-06-2025 12:00:00", "UTC", datetime(2025, 6, 20, 12, 0, tzinfo=UTC)),  # exactly 3 months
)


@pytest.mark.parametrize(("raw", "tz", "expected"), accepted)
def test_times_are_read_in_the_merchant_zone_and_returned_in_utc(raw: str, tz: str, expected: datetime) -> None:
    when = parse_schedule(raw, tz=tz, now=NOW)
    assert when == expected
    assert when is not None and when.utcoffset() == timedelta(0)


@pytest.mark.parametrize("raw", (None, "", "   "))
def test_no_time_means_send_now(raw: str | None) -> None:
    assert parse_schedule(raw, now=NOW) is None


_WINDOW = "must be 15 minutes to 3 months from now"
_ZONE = "unknown time zone"
_SKIPPED = "this local time does not exist (daylight-saving change)"
_NOT_REAL = "not a real date and time"
_FORMAT = "use dd-mm-yyyy hh:mm:ss or ISO 8601 date and time"

refused = (
    ("20-03-2025 12:14:59", "UTC", Code.SCHEDULE_OUT_OF_WINDOW, "time", _WINDOW),  # 1 s short of 15 minutes
    ("20-03-2025 11:00:00", "UTC", Code.SCHEDULE_OUT_OF_WINDOW, "time", _WINDOW),  # in the past
    ("20-06-2025 12:00:01", "UTC", Code.SCHEDULE_OUT_OF_WINDOW, "time", _WINDOW),  # 1 s past 3 months
    ("01-01-2030 00:00:00", "UTC", Code.SCHEDULE_OUT_OF_WINDOW, "time", _WINDOW),
    # would overflow converting to UTC
    ("0001-01-01T00:00:00+01:00", "UTC", Code.SCHEDULE_OUT_OF_WINDOW, "time", _WINDOW),
    ("9999-12-31T23:59:59-01:00", "UTC", Code.SCHEDULE_OUT_OF_WINDOW, "time", _WINDOW),
    ("30-03-2025 01:30:00", "Europe/London", Code.INVALID_INPUT, "time", _SKIPPED),  # skipped by the spring change
    ("2025-03-30T01:30:00", "Europe/London", Code.INVALID_INPUT, "time", _SKIPPED),
    ("29-02-2025 10:00:00", "UTC", Code.INVALID_INPUT, "time", _NOT_REAL),  # not a leap year
    ("32-03-2025 10:00:00", "UTC", Code.INVALID_INPUT, "time", _NOT_REAL),
    ("21-03-2025 24:00:00", "UTC", Code.INVALID_INPUT, "time", _NOT_REAL),
    ("21/03/2025 10:00:00", "UTC", Code.INVALID_INPUT, "time", _FORMAT),
    ("21-03-2025", "UTC", Code.INVALID_INPUT, "time", _FORMAT),
    ("2025-03-21", "UTC", Code.INVALID_INPUT, "time", _FORMAT),  # a date alone is refused
    ("21-03-25 10:00:00", "UTC", Code.INVALID_INPUT, "time", _FORMAT),
    ("tomorrow", "UTC", Code.INVALID_INPUT, "time", _FORMAT),
    ("2025-03-21T09:00:00+25:00", "UTC", Code.INVALID_INPUT, "time", _NOT_REAL),
    ("２１-03-2025 10:00:00", "UTC", Code.INVALID_INPUT, "time", _FORMAT),  # full-width digits
    ("21-03-2025 10:00:00", "Mars/Olympus", Code.INVALID_INPUT, "tz", _ZONE),
    ("21-03-2025 10:00:00", "../../etc/passwd", Code.INVALID_INPUT, "tz", _ZONE),
    ("21-03-2025 10:00:00", "", Code.INVALID_INPUT, "tz", _ZONE),
    ("21-03-2025 10:00:00", "Nowhere/Special", Code.INVALID_INPUT, "tz", _ZONE),  # well-formed key, no such zone
    ("21-03-2025 10:00:00", None, Code.INVALID_INPUT, "tz", _ZONE),  # no zone at all: coded, not a TypeError
    ("21-03-2025 10:00:00", 5, Code.INVALID_INPUT, "tz", _ZONE),
    (20250321, "UTC", Code.INVALID_INPUT, "time", _FORMAT),  # not text
    (" " * 22 + "21-03-2025 10:00:00", "UTC", Code.INVALID_INPUT, "time", _FORMAT),  # 41 characters: too long
)


@pytest.mark.parametrize(("raw", "tz", "code", "field", "detail"), refused)
def test_bad_or_out_of_window_times_are_refused_with_their_code(raw: object, tz: object, code: Code, field: str,
                                                                detail: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_schedule(raw, tz=tz, now=NOW)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.field, caught.value.detail) == (code, field, detail)


def test_forty_characters_with_padding_are_still_read() -> None:
    raw = " " * 21 + "21-03-2025 10:00:00"
    assert len(raw) == 40
    assert parse_schedule(raw, now=NOW) == datetime(2025, 3, 21, 10, 0, tzinfo=UTC)


@pytest.fixture
def host_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run with the host's own zone set to ``request.param`` (TZ), restored afterwards."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


host_cases = (
    # (host zone, now, raw in UTC, expected) - a winter `now` meets a summer window end on a DST host
    ("Asia/Kolkata", NOW, "2025-03-21T09:00:00", datetime(2025, 3, 21, 9, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2025, 1, 10, 12, 0, tzinfo=UTC), "10-04-2025 11:30:00",
     datetime(2025, 4, 10, 11, 30, tzinfo=UTC)),
    # 29 Nov 20:00 UTC is already 30 Nov in Kolkata: the window ends 28 Feb 20:00 UTC, not 27 Feb
    ("Asia/Kolkata", datetime(2025, 11, 29, 20, 0, tzinfo=UTC), "28-02-2026 10:00:00",
     datetime(2026, 2, 28, 10, 0, tzinfo=UTC)),
)


@pytest.mark.parametrize(("host_zone", "now", "raw", "expected"), host_cases, indirect=["host_zone"])
def test_the_host_zone_changes_nothing(host_zone: str, now: datetime, raw: str, expected: datetime) -> None:
    when = parse_schedule(raw, tz="UTC", now=now)
    assert when == expected
    assert when is not None and when.tzinfo is UTC


fold_cases = (
    ("26-10-2025 01:30:00", "Europe/London", datetime(2025, 10, 26, 0, 30, tzinfo=UTC)),  # BST, not GMT
    ("02-11-2025 01:30:00", "America/New_York", datetime(2025, 11, 2, 5, 30, tzinfo=UTC)),  # EDT, not EST
)


@pytest.mark.parametrize(("raw", "tz", "expected"), fold_cases)
def test_a_repeated_autumn_hour_means_its_first_occurrence(raw: str, tz: str, expected: datetime) -> None:
    assert parse_schedule(raw, tz=tz, now=datetime(2025, 10, 20, tzinfo=UTC)) == expected


month_cases = (
    (datetime(2025, 1, 10, 12, tzinfo=UTC), datetime(2025, 4, 10, 12, tzinfo=UTC)),
    (datetime(2025, 11, 30, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2023, 11, 30, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)),  # leap year
    (datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)),
    (datetime(2025, 10, 31, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC)),
)


@pytest.mark.parametrize(("start", "end"), month_cases)
def test_three_months_are_calendar_months_clamped_to_the_month_end(start: datetime, end: datetime) -> None:
    assert add_months(start, 3) == end


def test_the_last_day_of_a_clamped_window_is_still_accepted() -> None:
    now = datetime(2025, 11, 30, 9, 0, tzinfo=UTC)
    assert parse_schedule("28-02-2026 09:00:00", now=now) == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        parse_schedule("01-03-2026 09:00:00", now=now)
    assert caught.value.code is Code.SCHEDULE_OUT_OF_WINDOW


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="^now must be timezone-aware$"):
        parse_schedule("21-03-2025 10:00:00", now=datetime(2025, 3, 20))


@settings(max_examples=400)
@given(
    st.one_of(
        st.text(max_size=50),
        st.from_regex(r"[0-9]{2}-[0-9]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}", fullmatch=True),
        st.datetimes().map(lambda moment: moment.isoformat()),
        st.none(),
        st.integers(),
        st.binary(max_size=30),
    ),
    st.sampled_from(("UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "bad zone")),
)
def test_any_time_gives_an_instant_in_the_window_or_a_coded_refusal(raw: object, tz: str) -> None:
    try:
        when = parse_schedule(raw, tz=tz, now=NOW)  # type: ignore[arg-type]
    except ValidationError as exc:
        assert exc.code in (Code.INVALID_INPUT, Code.SCHEDULE_OUT_OF_WINDOW)
        return
    if when is not None:
        assert when.tzinfo is UTC
        assert NOW + timedelta(minutes=15) <= when <= add_months(NOW, 3)


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(2025, 3, 20, 12, 15), max_value=datetime(2025, 6, 20, 12, 0)))
def test_every_wall_time_in_the_window_round_trips_in_utc(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_schedule(moment.strftime("%d-%m-%Y %H:%M:%S"), now=NOW) == moment.replace(tzinfo=UTC)
