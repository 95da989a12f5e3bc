"""Scheduled send times: parse, pin to an instant, check the window (seed 000 E402).

Two forms are accepted for ``time``:

* ``dd-mm-yyyy hh:mm:ss`` (seed 000), read as wall time in the merchant's zone;
* ISO 8601 date and time (``2025-03-30T09:00:00``, with optional fraction and ``Z`` or
  ``±hh:mm``). A naive ISO value is the merchant's wall time; an offset is taken as given.
  A date alone is refused: midnight is rarely what the sender meant.

Wall times are checked against the zone's DST rules: a time that does not exist (the hour
skipped in spring) is refused, because any guess sends an hour early or late. A time that
exists twice (the hour repeated in autumn) means its first occurrence (``fold=0``), the one
a person reading a clock meets first.

The window is inclusive: at least 15 minutes and at most 3 calendar months after ``now``,
both in UTC. "3 months" adds 3 to the month and keeps the day, clamped to the month's last
day (30 November -> 28 or 29 February), so it matches what the sender sees on a calendar.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = ["MIN_LEAD", "MAX_MONTHS", "add_months", "parse_schedule"]

MIN_LEAD = timedelta(minutes=15)
MAX_MONTHS = 3

#: Seed 000's ``dd-mm-yyyy hh:mm:ss``.
_SEED_FORM = re.compile(r"([0-9]{2})-([0-9]{2})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_ISO_FORM = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_MAX_RAW_LENGTH = 40
#: What an IANA zone key looks like ('UTC', 'Asia/Kolkata', 'America/Argentina/Buenos_Aires').
_ZONE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,30}(/[A-Za-z0-9_+\-]{1,30}){0,2}")


def _bad(detail: str) -> ValidationError:
    """A refusal of the ``time`` field's format."""
    return ValidationError(Code.INVALID_INPUT, detail, field="time")


def _out_of_window() -> ValidationError:
    """A refusal of a time outside the scheduling window."""
    return ValidationError(Code.SCHEDULE_OUT_OF_WINDOW, "must be 15 minutes to 3 months from now", field="time")


def _zone(tz: str) -> ZoneInfo:
    """The IANA zone named ``tz``."""
    if not isinstance(tz, str) or not _ZONE_KEY.fullmatch(tz):
        raise ValidationError(Code.INVALID_INPUT, "unknown time zone", field="tz")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(Code.INVALID_INPUT, "unknown time zone", field="tz") from None


def _parse_naive(raw: str) -> datetime:
    """The wall time (or aware ISO time) written in ``raw``."""
    seed = _SEED_FORM.fullmatch(raw)
    try:
        if seed:
            day, month, year, hour, minute, second = (int(part) for part in seed.groups())
            return datetime(year, month, day, hour, minute, second)
        if _ISO_FORM.fullmatch(raw):
            return datetime.fromisoformat(raw)
    except ValueError:
        raise _bad("not a real date and time") from None
    raise _bad("use dd-mm-yyyy hh:mm:ss or ISO 8601 date and time")


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """``wall`` in ``zone`` (first occurrence when repeated); refused when DST skips it."""
    aware = wall.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        raise _bad("this local time does not exist (daylight-saving change)")
    return aware


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, the day clamped to the target month's end."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _check_window(when: datetime, now: datetime) -> None:
    """Refuse a time less than 15 minutes or more than 3 months after ``now``."""
    if not now + MIN_LEAD <= when <= add_months(now, MAX_MONTHS):
        raise _out_of_window()


def parse_schedule(raw: str | None, *, tz: str = "UTC", now: datetime) -> datetime | None:
    """The aware UTC instant ``raw`` names, or None for "send now" (None or blank).

    ``now`` must be timezone-aware; a naive ``now`` is a programming error (ValueError).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str) or len(raw) > _MAX_RAW_LENGTH:
        raise _bad("use dd-mm-yyyy hh:mm:ss or ISO 8601 date and time")
    zone = _zone(tz)
    written = _parse_naive(raw.strip())
    if abs(written.year - now.year) > 1:  # far outside the window; also keeps UTC conversion from overflowing
        raise _out_of_window()
    when = written if written.tzinfo is not None else _localize(written, zone)
    when = when.astimezone(UTC)
    _check_window(when, now.astimezone(UTC))
    return when
