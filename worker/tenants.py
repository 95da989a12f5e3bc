"""Tenants and their API keys: the `hexavox tenant create` and `hexavox tenant keys ...` commands, and test set-up.

A secret is shown once, when its key is issued: only its SHA-256 digest is stored. Revoking a key takes effect on the
next job in every process (keys are read in each job's own transaction, see worker/policy/auth.py). Rotating issues a
new key with the same rules and lets the old one work for a grace period, so publishers can switch without a gap.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import ApiKey, Tenant
from worker.catalogue import Code
from worker.errors import ValidationError
from worker.policy.auth import hash_secret, new_secret

__all__ = ["KeyRules", "create_key", "create_tenant", "list_keys", "revoke_key", "rotate_key"]


@dataclass(frozen=True)
class KeyRules:
    """What a key may do (seed 004's per-key rules); empty lists mean everything, or anywhere for ``cidrs``."""

    channels: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    merchants: list[str] = field(default_factory=list)
    cidrs: list[str] = field(default_factory=list)
    rate_limit_per_minute: int | None = None


def create_tenant(session: Session, name: str, *, channels: list[str] | None = None,
                  jobs: list[str] | None = None) -> tuple[int, str, str]:
    """Create (or reuse) tenant ``name`` and issue a new key; returns (tenant id, key id, secret)."""
    tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    key_id, secret = _issue(session, tenant.id, KeyRules(channels=channels or [], jobs=jobs or []))
    return tenant.id, key_id, secret


def create_key(session: Session, tenant_name: str, rules: KeyRules) -> tuple[str, str]:
    """Issue another key for an existing tenant; returns (key id, secret)."""
    return _issue(session, _tenant(session, tenant_name).id, rules)


def list_keys(session: Session, tenant_name: str) -> list[dict[str, Any]]:
    """Every key of a tenant with its rules and state; never a secret or its digest."""
    tenant = _tenant(session, tenant_name)
    keys = session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.id)).all()
    return [_view(key) for key in keys]


def revoke_key(session: Session, key_id: str) -> dict[str, Any]:
    """Refuse a key from the next job on."""
    key = _key(session, key_id)
    key.active = False
    return _view(key)


def rotate_key(session: Session, key_id: str, *, grace_seconds: int, now: dt.datetime | None = None,
               ) -> tuple[str, str, dict[str, Any]]:
    """A new key with the old one's rules; the old one keeps working for ``grace_seconds`` (0 revokes it now)."""
    old = _key(session, key_id)
    if not old.active:
        raise ValidationError(Code.AUTHENTICATION_FAILED, f"key {key_id} is revoked", field="keyId")
    rules = KeyRules(list(old.allowed_channels), list(old.allowed_jobs), list(old.allowed_merchants),
                     list(old.allowed_cidrs), old.rate_limit_per_minute)
    new_id, secret = _issue(session, old.tenant_id, rules)
    moment = now or dt.datetime.now(dt.UTC)
    if grace_seconds <= 0:
        old.active = False
    else:
        ends = moment + dt.timedelta(seconds=grace_seconds)
        old.expires_at = min(old.expires_at, ends) if old.expires_at else ends
    return new_id, secret, _view(old)


def _issue(session: Session, tenant_id: int, rules: KeyRules) -> tuple[str, str]:
    key_id, secret = "hxk_" + secrets.token_hex(8), new_secret()
    session.add(ApiKey(tenant_id=tenant_id, key_id=key_id, secret_sha256=hash_secret(secret),
                       allowed_channels=rules.channels or ["*"], allowed_jobs=rules.jobs or ["*"],
                       allowed_merchants=rules.merchants or ["*"], allowed_cidrs=rules.cidrs,
                       rate_limit_per_minute=rules.rate_limit_per_minute))
    session.flush()
    return key_id, secret


def _tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise ValidationError(Code.INVALID_INPUT, f"no tenant named {name!r}", field="tenant")
    return tenant


def _key(session: Session, key_id: str) -> ApiKey:
    key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if key is None:
        raise ValidationError(Code.AUTHENTICATION_FAILED, f"no key {key_id!r}", field="keyId")
    return key


def _view(key: ApiKey) -> dict[str, Any]:
    return {"keyId": key.key_id, "active": key.active,
            "expiresAt": key.expires_at.isoformat() if key.expires_at else None,
            "channels": key.allowed_channels, "jobs": key.allowed_jobs, "merchants": key.allowed_merchants,
            "cidrs": key.allowed_cidrs, "rateLimitPerMinute": key.rate_limit_per_minute,
            "createdAt": key.created_at.isoformat() if key.created_at else None}
