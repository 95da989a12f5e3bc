"""Tenant authentication and per-key rules (seed 004: a key's rule limits the services it may use).

Secrets are 256-bit random tokens we issue, stored as SHA-256 digests and compared in
constant time; a verified key is cached for a minute so a busy worker does not look it up
for every job.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.models import ApiKey
from worker.catalogue import Code
from worker.contract import Credentials
from worker.errors import AuthenticationError

__all__ = ["Principal", "authenticate", "hash_secret", "new_secret"]

_CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, str, Principal]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Principal:
    """Who sent a job: the tenant and what its key may do."""

    tenant_id: int
    key_id: str
    allowed_channels: frozenset[str]
    allowed_jobs: frozenset[str]

    def require(self, job: str, channel: str | None = None) -> None:
        """Refuse a job kind or channel outside this key's rules."""
        if "*" not in self.allowed_jobs and job not in self.allowed_jobs:
            raise AuthenticationError(Code.KEY_NOT_PERMITTED, f"key may not run {job}")
        if channel and "*" not in self.allowed_channels and channel not in self.allowed_channels:
            raise AuthenticationError(Code.KEY_NOT_PERMITTED, f"key may not use channel {channel}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def authenticate(session: Session, credentials: Credentials) -> Principal:
    """The principal behind ``credentials``; AuthenticationError(E801) for an unknown key or a wrong secret."""
    digest = hash_secret(credentials.secret)
    cached = _cached(credentials.key_id)
    if cached and hmac.compare_digest(cached[0], digest):
        return cached[1]
    key = session.scalars(select(ApiKey).where(ApiKey.key_id == credentials.key_id, ApiKey.active)).first()
    if key is None or not hmac.compare_digest(key.secret_sha256, digest):
        raise AuthenticationError(Code.AUTHENTICATION_FAILED, "unknown key or wrong secret")
    principal = Principal(key.tenant_id, key.key_id, frozenset(key.allowed_channels), frozenset(key.allowed_jobs))
    with _lock:
        _cache[key.key_id] = (time.monotonic() + _CACHE_SECONDS, key.secret_sha256, principal)
    return principal


def _cached(key_id: str) -> tuple[str, Principal] | None:
    with _lock:
        hit = _cache.get(key_id)
    if hit is None or hit[0] < time.monotonic():
        return None
    return hit[1], hit[2]


def forget_cached_keys() -> None:
    """Drop cached keys (after revoking one, and between tests)."""
    with _lock:
        _cache.clear()
