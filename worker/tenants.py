"""Tenant and API key provisioning (the `hexavox tenant create` command and test set-up)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import ApiKey, Tenant
from worker.policy.auth import hash_secret, new_secret

__all__ = ["create_tenant"]


def create_tenant(session: Session, name: str, *, channels: list[str] | None = None,
                  jobs: list[str] | None = None) -> tuple[int, str, str]:
    """Create (or reuse) tenant ``name`` and issue a new key; returns (tenant id, key id, secret).

    The secret is shown once: only its digest is stored.
    """
    tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    key_id, secret = "hxk_" + secrets.token_hex(8), new_secret()
    session.add(ApiKey(tenant_id=tenant.id, key_id=key_id, secret_sha256=hash_secret(secret),
                       allowed_channels=channels or ["*"], allowed_jobs=jobs or ["*"]))
    session.flush()
    return tenant.id, key_id, secret
