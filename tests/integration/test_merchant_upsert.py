"""hexavox.merchant.upsert.v1 and hexavox.consent.upsert.v1: create sets defaults, update patches, answers as seed 003.

Seed 003's MerchantView and ConsentView (shapes copied from /work/shared/seeds/003_*.txt):
the answers carry exactly these keys, no more and no fewer.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from schema.models import Merchant
from worker.db import session_scope
from worker.runner import run_admin_job_by_name
from worker.validation.masking import mask_contact

from factories import Tenant, make_tenant

MERCHANT_VIEW_KEYS = {"merchantId", "displayName", "active", "limits", "credits", "usage"}
LIMITS_KEYS = {"smsLimit", "voiceMinutesLimit", "emailLimit"}
CREDITS_KEYS = {"smsCredits", "voiceMinutesCredits", "emailCredits"}
USAGE_KEYS = {"smsUsed", "voiceUsed", "emailUsed", "periodStart"}
CONSENT_VIEW_KEYS = {"merchantId", "channel", "contact", "status", "source", "updatedAt"}


def upsert(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    answer = run_admin_job_by_name("hexavox.merchant.upsert.v1", {"auth": tenant.auth, "merchantId": "gym-a",
                                                                  **fields}, str(uuid.uuid4()))
    assert answer["status"] == "ACCEPTED", answer
    result: dict[str, Any] = answer["result"]
    return result


def stored(tenant: Tenant) -> tuple[str, bool, str, list[Any]]:
    with session_scope() as session:
        merchant = session.query(Merchant).filter_by(tenant_id=tenant.tenant_id, external_id="gym-a").one()
        return merchant.display_name, merchant.active, merchant.timezone, list(merchant.allowed_countries)


def test_create_with_only_an_id_gets_the_documented_defaults(hexavox_env: dict[str, str]) -> None:
    # When a merchant is created with nothing but its id
    view = upsert(make_tenant())
    # Then it is active, named after its id, and has the non-zero default limits (so its first OTP goes out)
    assert (view["merchantId"], view["displayName"], view["active"]) == ("gym-a", "gym-a", True)
    assert view["limits"] == {"smsLimit": 100, "voiceMinutesLimit": 10, "emailLimit": 100}


def test_new_merchant_limits_come_from_the_setting(hexavox_env: dict[str, str], monkeypatch: Any) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_NEW_MERCHANT_LIMITS", '{"SMS": 7}')
    reset_settings()
    view = upsert(make_tenant())
    assert view["limits"] == {"smsLimit": 7, "voiceMinutesLimit": 10, "emailLimit": 100}


def test_an_update_changes_only_the_fields_it_gives(hexavox_env: dict[str, str]) -> None:
    # Given a merchant created with every field set, deactivated, in New York, US only
    tenant = make_tenant()
    upsert(tenant, displayName="Gym A", active=False, smsLimit=5000, voiceMinutesLimit=1000, emailLimit=25000,
           timezone="America/New_York", allowedCountries=["us"])
    # When it is re-sent with only a new SMS limit
    view = upsert(tenant, smsLimit=6000)
    # Then only the SMS limit changed: voice and email keep theirs, it stays inactive, in New York, US only
    assert view["limits"] == {"smsLimit": 6000, "voiceMinutesLimit": 1000, "emailLimit": 25000}
    assert stored(tenant) == ("Gym A", False, "America/New_York", ["US"])
    # And a field given explicitly does change
    upsert(tenant, active=True, allowedCountries=[])
    assert stored(tenant) == ("Gym A", True, "America/New_York", [])


def test_the_merchant_answer_has_exactly_seed_003s_merchant_view(hexavox_env: dict[str, str]) -> None:
    view = upsert(make_tenant(), displayName="Gym A", smsLimit=5000, voiceMinutesLimit=1000, emailLimit=25000)
    assert set(view) == MERCHANT_VIEW_KEYS
    assert (set(view["limits"]), set(view["credits"]), set(view["usage"])) == (LIMITS_KEYS, CREDITS_KEYS, USAGE_KEYS)
    assert view["credits"] == {"smsCredits": 0, "voiceMinutesCredits": 0, "emailCredits": 0}
    assert view["usage"] == {"smsUsed": 0, "voiceUsed": 0, "emailUsed": 0,
                             "periodStart": dt.date.today().replace(day=1).isoformat()}


def test_the_consent_answer_has_exactly_seed_003s_consent_view_with_updated_at(hexavox_env: dict[str, str]) -> None:
    # Given a merchant
    tenant = make_tenant()
    upsert(tenant)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    # When a consent is upserted
    answer = run_admin_job_by_name("hexavox.consent.upsert.v1", {
        "auth": tenant.auth, "merchantId": "gym-a", "channel": "SMS", "contact": "+18135551234",
        "status": "OPT_IN", "source": "checkout-form"}, str(uuid.uuid4()))
    # Then the answer is the seed's ConsentView, updatedAt in the seed's form (UTC, milliseconds, Z) and recent
    view = answer["result"]
    assert set(view) == CONSENT_VIEW_KEYS, view
    assert (view["merchantId"], view["channel"], view["status"], view["source"]) == (
        "gym-a", "SMS", "OPT_IN", "checkout-form")
    assert view["contact"] == mask_contact("+18135551234")  # answers are kept in the result backend: masked
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", view["updatedAt"]), view["updatedAt"]
    when = dt.datetime.strptime(view["updatedAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert before <= when <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
