"""Test data built through the service's own policy functions (no hand-written rows that could drift)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from schema.states import ConsentStatus
from worker.contract import Credentials, MerchantUpsertJob
from worker.db import session_scope
from worker.policy.consent import set_consent
from worker.policy.merchants import load_merchant, upsert_merchant
from worker.tenants import create_tenant


@dataclass(frozen=True)
class Tenant:
    tenant_id: int
    key_id: str
    secret: str

    @property
    def auth(self) -> dict[str, str]:
        return {"keyId": self.key_id, "secret": self.secret}

    @property
    def credentials(self) -> Credentials:
        return Credentials(keyId=self.key_id, secret=self.secret)


def make_tenant(name: str = "acme", **kw: Any) -> Tenant:
    with session_scope() as session:
        return Tenant(*create_tenant(session, name, **kw))


def make_merchant(tenant: Tenant, merchant_id: str = "gym-a", *, sms: int = 1000, voice: int = 100, email: int = 1000,
                  **fields: Any) -> int:
    job = MerchantUpsertJob.model_validate({"auth": tenant.auth, "merchantId": merchant_id, "displayName": "Gym",
                                            "smsLimit": sms, "voiceMinutesLimit": voice, "emailLimit": email,
                                            **fields})
    with session_scope() as session:
        return upsert_merchant(session, tenant.tenant_id, job, dt.date.today()).id


def opt(tenant: Tenant, merchant_id: str, channel: str, contact: str, status: str = "OPT_IN") -> None:
    with session_scope() as session:
        merchant = load_merchant(session, tenant.tenant_id, merchant_id, must_be_active=False)
        set_consent(session, merchant.id, channel, contact, ConsentStatus(status), "test")


def sms(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """An SMS job payload with sensible defaults."""
    return {"auth": tenant.auth, "merchantId": "gym-a", "to": "+18135551234", "body": "Class moved to 6 pm",
            "sender": "GYMA", "type": "TXN", **fields}


def sms_job(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """The same job as :func:`sms` for the broker door, where credentials never travel (the client signs)."""
    job = sms(tenant, **fields)
    del job["auth"]
    return job
