"""The HTTP door's admission on a real database: the key and secret, then the key's IP allowlist and request rate,
both before the work (:func:`admit`) and again inside the job's own transaction (:meth:`Caller.authenticator`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from api.access import Caller, admit
from api.limits import reset_limiters
from api.status import ApiError
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import AuthenticationError, Refusal
from worker.policy.auth import Principal
from worker.settings import Settings, load_settings
from worker.tenants import KeyRules, create_key, revoke_key

from factories import Tenant


@pytest.fixture(autouse=True)
def _fresh_limiters() -> Iterator[None]:
    reset_limiters()
    yield
    reset_limiters()


def _settings() -> Settings:
    """In-process pacing (no Redis URL) and a default rate no test reaches."""
    return replace(load_settings(), redis_url="", api_rate_limit=600)


def _issue(cidrs: list[str] | None = None, rate: int | None = None) -> tuple[str, str]:
    with session_scope() as session:
        return create_key(session, "acme", KeyRules(cidrs=cidrs or [], rate_limit_per_minute=rate))


def _admit(caller: Caller) -> Principal:
    with session_scope() as session:
        return admit(session, caller, _settings())


def _resolve(caller: Caller) -> Principal:
    with session_scope() as session:
        return caller.authenticator()(session)


def _refused(call: object, caller: Caller) -> Refusal:
    with pytest.raises(Refusal) as refused:
        call(caller)  # type: ignore[operator]
    return refused.value


WRONG_SECRET = {"code": Code.AUTHENTICATION_FAILED.value, "name": "AUTHENTICATION_FAILED",
                "detail": "unknown key or wrong secret"}
OUTSIDE = {"code": Code.CLIENT_IP_NOT_ALLOWED.value, "name": "CLIENT_IP_NOT_ALLOWED",
           "detail": "this key does not accept requests from this address"}


@pytest.mark.parametrize("call", [_admit, _resolve])
def test_the_right_key_and_secret_give_the_keys_principal(tenant: Tenant, call: object) -> None:
    key_id, secret = _issue(cidrs=["10.0.0.0/8"], rate=30)
    who = call(Caller(key_id, secret, "10.1.2.3"))  # type: ignore[operator]
    assert (who.tenant_id, who.key_id, who.allowed_cidrs, who.rate_limit_per_minute) == (
        tenant.tenant_id, key_id, ("10.0.0.0/8",), 30)


@pytest.mark.parametrize("call", [_admit, _resolve])
def test_a_wrong_secret_an_unknown_key_or_a_revoked_key_is_refused(tenant: Tenant, call: object) -> None:
    key_id, secret = _issue()
    for caller in (Caller(key_id, secret + "x", None), Caller("hxk_unknown", secret, None)):
        refused = _refused(call, caller)
        assert isinstance(refused, AuthenticationError) and refused.as_dict() == WRONG_SECRET
    with session_scope() as session:
        revoke_key(session, key_id)
    assert _refused(call, Caller(key_id, secret, None)).as_dict() == WRONG_SECRET


@pytest.mark.parametrize("call", [_admit, _resolve])
def test_the_keys_allowlist_is_checked_against_the_callers_address(tenant: Tenant, call: object) -> None:
    key_id, secret = _issue(cidrs=["10.0.0.0/8"])
    call(Caller(key_id, secret, "10.9.9.9"))  # type: ignore[operator]
    refused = _refused(call, Caller(key_id, secret, "192.0.2.1"))
    assert isinstance(refused, ApiError) and refused.as_dict() == OUTSIDE


def test_admit_counts_the_keys_rate_and_the_authenticator_does_not(tenant: Tenant) -> None:
    key_id, secret = _issue(rate=2)
    caller = Caller(key_id, secret, "198.51.100.7")
    _admit(caller)
    _admit(caller)
    for _ in range(3):  # the job's own check runs after admission: it must not charge the request twice
        _resolve(caller)
    refused = _refused(_admit, caller)
    assert isinstance(refused, ApiError) and refused.code == Code.RATE_LIMITED
    assert refused.headers == {"Retry-After": "30"}


def test_a_refused_address_is_not_charged_to_the_keys_rate(tenant: Tenant) -> None:
    key_id, secret = _issue(cidrs=["10.0.0.0/8"], rate=1)
    for _ in range(3):
        assert _refused(_admit, Caller(key_id, secret, "192.0.2.1")).code == Code.CLIENT_IP_NOT_ALLOWED
    _admit(Caller(key_id, secret, "10.0.0.1"))


def test_the_caller_keeps_its_headers_and_shows_no_secret() -> None:
    caller = Caller.from_headers("hxk_1", "s3cret", "203.0.113.9")
    assert (caller.key_id, caller.secret, caller.client_ip) == ("hxk_1", "s3cret", "203.0.113.9")
    assert repr(caller) == "Caller(key_id='hxk_1', client_ip='203.0.113.9')"


@pytest.mark.parametrize(("key_id", "secret"), [("k" * 64, "s"), ("k", "s" * 256), ("k", "s é")])
def test_the_longest_and_any_printable_headers_are_read(key_id: str, secret: str) -> None:
    assert Caller.from_headers(key_id, secret, None).secret == secret


@pytest.mark.parametrize(("key_id", "secret"), [
    (None, "s"), ("", "s"), ("k", None), ("k", ""), ("k" * 65, "s"), ("k", "s" * 257), ("k\n", "s"), ("k", "s\x00"),
])
def test_a_missing_overlong_or_unprintable_header_is_refused(key_id: str | None, secret: str | None) -> None:
    with pytest.raises(AuthenticationError) as refused:
        Caller.from_headers(key_id, secret, None)
    assert refused.value.as_dict() == {"code": Code.AUTHENTICATION_FAILED.value, "name": "AUTHENTICATION_FAILED",
                                       "detail": "send X-API-KEY and X-API-SECRET headers"}
