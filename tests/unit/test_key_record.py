"""The cacheable copy of an API key (worker/policy/auth.py KeyRecord): the same principal as the row, its expiry
always in UTC (SQLite gives it back without its zone), and plain immutable values only."""

from __future__ import annotations

import dataclasses
import datetime as dt

from schema.models import ApiKey
from worker.policy.auth import ALL, KeyRecord


def _key(**fields: object) -> ApiKey:
    row = {"tenant_id": 7, "key_id": "hxk_1", "secret_sha256": "ab" * 32, "allowed_channels": ["SMS"],
           "allowed_jobs": ["hexavox.sms.send.v1"], "allowed_merchants": None, "allowed_cidrs": ["10.0.0.0/8"],
           "rate_limit_per_minute": 30, "active": True, "expires_at": None, **fields}
    return ApiKey(**row)


def test_the_record_gives_the_principal_of_its_row() -> None:
    who = KeyRecord.of(_key()).principal()
    assert (who.tenant_id, who.key_id, who.allowed_channels, who.allowed_jobs, who.allowed_merchants,
            who.allowed_cidrs, who.rate_limit_per_minute) == (
        7, "hxk_1", frozenset({"SMS"}), frozenset({"hexavox.sms.send.v1"}), frozenset({ALL}), ("10.0.0.0/8",), 30)


def test_an_expiry_without_its_zone_is_read_as_utc() -> None:
    naive = KeyRecord.of(_key(expires_at=dt.datetime(2030, 1, 2, 3, 4))).expires_at
    assert naive == dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
    zoned = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert KeyRecord.of(_key(expires_at=zoned)).expires_at == zoned


def test_the_record_holds_no_mutable_value() -> None:
    record = KeyRecord.of(_key())
    for field in dataclasses.fields(record):
        assert not isinstance(getattr(record, field.name), (list, dict, set)), field.name
