"""The HTTP door's own rules, without a server: the status table, the IP allowlist, payload mapping, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.access import Caller
from api.limits import require_address
from api.payloads import count_recipients, send_payload
from api.status import HTTP_STATUS, ApiError, status_for
from worker.catalogue import CATALOGUE, Code
from worker.errors import AuthenticationError, ConfigurationError, ValidationError
from worker.policy.auth import Principal


def test_only_an_internal_error_is_a_5xx_and_unlisted_codes_are_validation() -> None:
    assert {code for code, status in HTTP_STATUS.items() if status >= 500} == {Code.INTERNAL_ERROR}
    assert all(code in CATALOGUE for code in HTTP_STATUS)
    assert status_for(Code.INVALID_TYPE) == status_for("E999") == 422
    assert (status_for("E801"), status_for("E840"), status_for("E809"), status_for("E843")) == (401, 403, 409, 429)


def _key(*cidrs: str) -> Principal:
    return Principal(1, "k", frozenset({"*"}), frozenset({"*"}), allowed_cidrs=cidrs)


@pytest.mark.parametrize(("cidrs", "address", "allowed"), [
    ((), "198.51.100.1", True),
    (("10.0.0.0/8",), "10.1.2.3", True),
    (("10.0.0.0/8",), "::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 is the IPv4 address
    (("10.0.0.0/8",), "11.0.0.1", False),
    (("2001:db8::/32",), "2001:db8::1", True),
    (("2001:db8::/32",), "10.0.0.1", False),
    (("not a network", "10.0.0.0/8"), "10.0.0.1", True),  # a bad entry matches nothing, the rest still do
    (("not a network",), "10.0.0.1", False),
    (("10.0.0.0/8",), None, False),
    (("10.0.0.0/8",), "garbage", False),
])
def test_ip_allowlist(cidrs: tuple[str, ...], address: str | None, allowed: bool) -> None:
    if allowed:
        require_address(_key(*cidrs), address)
    else:
        with pytest.raises(ApiError) as refused:
            require_address(_key(*cidrs), address)
        assert refused.value.code == Code.CLIENT_IP_NOT_ALLOWED


def test_send_payload_maps_seed_names_headers_and_bounds() -> None:
    payload = send_payload({"message": "hi", "to": "+1,+2"}, "key-1", 5, renames={"message": "body"})
    assert payload == {"body": "hi", "to": "+1,+2", "idempotencyKey": "key-1"}
    assert send_payload({"idempotencyKey": "body-key"}, "header-key", 5)["idempotencyKey"] == "header-key"
    with pytest.raises(ValidationError):
        send_payload({"message": "a", "body": "b"}, None, 5, renames={"message": "body"})
    with pytest.raises(ValidationError):
        send_payload({}, "bad\nkey", 5)
    with pytest.raises(ApiError) as many:
        send_payload({"to": ["+1"] * 3, "sms": [{"to": "+1"}] * 3}, None, 5)
    assert many.value.code == Code.TOO_MANY_RECIPIENTS
    assert count_recipients({"listId": "members"}) == 0 and count_recipients({"to": "+1, +2, +3"}) == 3


def test_credentials_come_only_from_printable_headers_and_never_show_in_repr() -> None:
    caller = Caller.from_headers("hxk_1", "s3cret", "127.0.0.1")
    assert "s3cret" not in repr(caller)
    for key_id, secret in ((None, "s"), ("k", ""), ("k" * 65, "s"), ("k", "s\x00")):
        with pytest.raises(AuthenticationError):
            Caller.from_headers(key_id, secret, None)


def test_api_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import load_settings

    monkeypatch.setenv("HEXAVOX_API_RATE_LIMIT", "120")
    monkeypatch.setenv("HEXAVOX_API_MAX_RECIPIENTS", "50")
    monkeypatch.setenv("HEXAVOX_API_TRUSTED_PROXIES", "10.0.0.5")
    settings = load_settings()
    assert (settings.api_rate_limit, settings.api_max_recipients, settings.api_trusted_proxies) == (120, 50, "10.0.0.5")
    assert settings.api_max_body_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("HEXAVOX_API_MAX_BODY_BYTES", "10")
    with pytest.raises(ConfigurationError):
        load_settings()


def test_rate_limit_lets_requests_through_when_its_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    from api.limits import require_rate, reset_limiters
    from worker.settings import load_settings

    reset_limiters()
    closed = replace(load_settings(), redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    key = replace(_key(), rate_limit_per_minute=1)
    for _ in range(3):
        require_rate(key, closed)
    assert "not checked: Redis unavailable" in caplog.text
    reset_limiters()


def test_hexavox_contract_writes_the_openapi_document_beside_the_schemas(tmp_path: Path) -> None:
    import json

    import yaml

    from api.openapi import openapi_document
    from worker.cli import main

    assert main(["contract", "--write", str(tmp_path / "contract")]) == 0
    assert (tmp_path / "contract" / "hexavox.sms.send.v1.json").is_file()
    assert json.loads((tmp_path / "openapi.json").read_text()) == openapi_document()
    assert yaml.safe_load((tmp_path / "openapi.yaml").read_text()) == openapi_document()
