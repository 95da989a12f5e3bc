"""The HTTP door's per-key rules in detail: every refusal's code, detail and headers, the allowlist's edges, and
the request rate paced in-process and in Redis (no server, no database: these run once per mutant)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from api.limits import require_address, require_rate, reset_limiters
from api.status import ApiError
from worker.catalogue import Code
from worker.policy.auth import Principal
from worker.settings import Settings, load_settings


def _key(*cidrs: str, key_id: str = "k", rate: int | None = None) -> Principal:
    return Principal(1, key_id, frozenset({"*"}), frozenset({"*"}), allowed_cidrs=cidrs, rate_limit_per_minute=rate)


@pytest.fixture(autouse=True)
def _fresh_limiters() -> Iterator[None]:
    reset_limiters()
    yield
    reset_limiters()


def _settings(redis_url: str = "", default_rate: int = 600) -> Settings:
    return replace(load_settings(), redis_url=redis_url, api_rate_limit=default_rate)


def _refusal(who: Principal, settings: Settings) -> ApiError:
    with pytest.raises(ApiError) as refused:
        require_rate(who, settings)
    return refused.value


def _grants(who: Principal, settings: Settings, count: int) -> None:
    for _ in range(count):
        require_rate(who, settings)


# --- IP allowlist -------------------------------------------------------------------------------------------------

def test_an_address_outside_the_allowlist_is_refused_with_its_detail() -> None:
    with pytest.raises(ApiError) as refused:
        require_address(_key("10.0.0.0/8"), "11.0.0.1")
    assert refused.value.as_dict() == {"code": Code.CLIENT_IP_NOT_ALLOWED.value, "name": "CLIENT_IP_NOT_ALLOWED",
                                       "detail": "this key does not accept requests from this address"}
    assert refused.value.headers == {}


@pytest.mark.parametrize("address", [None, "", "garbage"])
def test_an_unknown_address_is_refused_as_unknown(address: str | None) -> None:
    with pytest.raises(ApiError) as refused:
        require_address(_key("10.0.0.0/8"), address)
    assert refused.value.as_dict() == {"code": Code.CLIENT_IP_NOT_ALLOWED.value, "name": "CLIENT_IP_NOT_ALLOWED",
                                       "detail": "client address unknown"}


@pytest.mark.parametrize(("cidrs", "address"), [
    ((" 10.0.0.0/8 ",), "10.1.2.3"),  # an entry with spaces around it still counts
    (("10.0.0.1/8",), "10.200.0.1"),  # host bits set: read as its network, not refused as malformed
    (("192.168.0.0/16", "10.0.0.0/8"), "10.1.2.3"),  # any one entry matching is enough
    (("10.0.0.0/8", "192.168.0.0/16"), "10.1.2.3"),
    (("10.0.0.0/8",), " 10.1.2.3 "),  # the address as a proxy header may carry it
])
def test_addresses_the_allowlist_accepts(cidrs: tuple[str, ...], address: str) -> None:
    require_address(_key(*cidrs), address)


def test_a_mapped_address_is_compared_as_ipv4_never_against_an_ipv6_entry() -> None:
    with pytest.raises(ApiError) as refused:
        require_address(_key("::ffff:0:0/96"), "::ffff:10.1.2.3")
    assert refused.value.code == Code.CLIENT_IP_NOT_ALLOWED


# --- request rate, in-process ---------------------------------------------------------------------------------------

def test_the_keys_own_rate_allows_a_minutes_burst_then_refuses_with_the_wait() -> None:
    who = _key(rate=2)
    _grants(who, _settings(), 2)
    refused = _refusal(who, _settings())
    assert refused.as_dict() == {"code": Code.RATE_LIMITED.value, "name": "RATE_LIMITED",
                                 "detail": "2 requests per minute for this key; retry in 30 s"}
    assert refused.headers == {"Retry-After": "30"}


def test_a_key_without_its_own_rate_gets_the_default() -> None:
    settings = _settings(default_rate=3)
    _grants(_key(), settings, 3)
    refused = _refusal(_key(), settings)
    assert refused.detail == "3 requests per minute for this key; retry in 20 s"
    assert refused.headers == {"Retry-After": "20"}


def test_a_rate_of_one_refuses_the_second_request() -> None:
    _grants(_key(rate=1), _settings(), 1)
    assert _refusal(_key(rate=1), _settings()).headers == {"Retry-After": "60"}


def test_a_wait_under_a_second_is_rounded_up_to_one() -> None:
    who = _key(rate=120)  # one request every half second
    _grants(who, _settings(), 120)
    refused = _refusal(who, _settings())
    assert refused.headers == {"Retry-After": "1"}
    assert refused.detail == "120 requests per minute for this key; retry in 1 s"


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_of_zero_or_less_means_unlimited(rate: int) -> None:
    _grants(_key(rate=rate), _settings(), 50)
    _grants(_key(), _settings(default_rate=rate), 50)


def test_each_key_and_each_rate_has_its_own_budget() -> None:
    settings = _settings()
    _grants(_key(key_id="a", rate=2), settings, 2)
    _grants(_key(key_id="b", rate=2), settings, 2)  # another key of the same rate is not charged for "a"
    _grants(_key(key_id="c", rate=5), settings, 5)  # another rate keeps its own, larger burst
    assert _refusal(_key(key_id="c", rate=5), settings).code == Code.RATE_LIMITED


def test_reset_forgets_every_budget() -> None:
    _grants(_key(rate=1), _settings(), 1)
    reset_limiters()
    require_rate(_key(rate=1), _settings())


# --- request rate, in Redis ----------------------------------------------------------------------------------------

def test_with_redis_the_budget_is_kept_in_redis_under_the_api_prefix(redis_url: str) -> None:
    shared = _settings(redis_url)
    _grants(_key(key_id="hxk_r", rate=2), shared, 2)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("*") == [b"hexavox:api-rate:hxk_r"]
        refused = _refusal(_key(key_id="hxk_r", rate=2), shared)
        assert refused.headers == {"Retry-After": "30"}
        reset_limiters()  # another process (a new limiter) sees the same budget: it lives in Redis
        assert _refusal(_key(key_id="hxk_r", rate=2), shared).code == Code.RATE_LIMITED
        _grants(_key(key_id="hxk_local", rate=2), _settings(), 2)  # no Redis URL: counted in-process only
        assert client.keys("*") == [b"hexavox:api-rate:hxk_r"]
    finally:
        client.close()


def test_an_unreachable_redis_lets_requests_through_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    closed = _settings("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="api.limits"):
        _grants(_key(key_id="hxk_down", rate=1), closed, 2)
    assert [(r.name, r.levelno) for r in caplog.records] == [("api.limits", logging.WARNING)] * 2
    assert caplog.messages == ["request rate of key hxk_down not checked: Redis unavailable (ConnectionError)"] * 2
