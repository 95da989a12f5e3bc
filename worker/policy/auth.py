"""Tenant authentication and per-key rules (seed 004: a key's rule limits the services it may use).

Two doors, one check of who is asking. The HTTP API presents a key id and its secret (X-API-KEY / X-API-SECRET):
:func:`by_secret`. A job on the broker carries no secret, only a signed envelope (:mod:`worker.envelope`):
:func:`by_envelope`. Either way the key is checked in the job's own transaction, so a revoked or expired key is refused
on the very next job in every process: a key is served from :mod:`worker.lookup_cache` only while no key, tenant,
merchant or route changed since it was read (its generation), and its expiry is checked on every use. Secrets are
256-bit random tokens we issue, stored as SHA-256 digests and compared in constant time; only the digest is cached.

An :data:`Authenticator` is what a door hands the runner: called with the job's session, it returns the
:class:`Principal` or raises :class:`AuthenticationError` (E801).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schema.models import ApiKey
from worker.catalogue import Code
from worker.envelope import EnvelopeError, check
from worker.errors import AuthenticationError
from worker.lookup_cache import MISSING, cached

__all__ = ["Authenticator", "KeyRecord", "Principal", "active_key", "authenticate", "by_envelope", "by_secret",
           "hash_secret", "key_record", "new_secret"]

ALL = "*"


@dataclass(frozen=True)
class Principal:
    """Who sent a job: the tenant, and what its key may do."""

    tenant_id: int
    key_id: str
    allowed_channels: frozenset[str]
    allowed_jobs: frozenset[str]
    allowed_merchants: frozenset[str] = frozenset({ALL})
    allowed_cidrs: tuple[str, ...] = ()
    rate_limit_per_minute: int | None = None

    def require(self, job: str, channel: str | None = None) -> None:
        """Refuse a job kind or channel outside this key's rules (E802)."""
        if ALL not in self.allowed_jobs and job not in self.allowed_jobs:
            raise AuthenticationError(Code.KEY_NOT_PERMITTED, f"key may not run {job}")
        if channel is not None:
            self.require_channel(channel)

    def require_channel(self, channel: str) -> None:
        if ALL not in self.allowed_channels and channel not in self.allowed_channels:
            raise AuthenticationError(Code.KEY_NOT_PERMITTED, f"key may not use channel {channel}", field="channel")

    def require_merchant(self, merchant_id: str) -> None:
        if ALL not in self.allowed_merchants and merchant_id not in self.allowed_merchants:
            raise AuthenticationError(Code.KEY_NOT_PERMITTED, "key may not act for this merchant", field="merchantId")


#: Resolves the caller inside the job's transaction (see the module docstring).
Authenticator = Callable[[Session], Principal]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def active_key(session: Session, key_id: str, now: dt.datetime | None = None) -> ApiKey | None:
    """The key if it exists, is active and has not expired (a rotated key's grace period is over)."""
    moment = now or dt.datetime.now(dt.UTC)
    return session.scalars(select(ApiKey).where(
        ApiKey.key_id == key_id, ApiKey.active, or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > moment))).first()


@dataclass(frozen=True)
class KeyRecord:
    """What a job needs of an active key, as a plain immutable copy that a process may keep (no ORM instance)."""

    tenant_id: int
    key_id: str
    secret_sha256: str
    allowed_channels: frozenset[str]
    allowed_jobs: frozenset[str]
    allowed_merchants: frozenset[str]
    allowed_cidrs: tuple[str, ...]
    rate_limit_per_minute: int | None
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyRecord:
        return cls(key.tenant_id, key.key_id, key.secret_sha256, frozenset(key.allowed_channels),
                   frozenset(key.allowed_jobs), frozenset(key.allowed_merchants or [ALL]),
                   tuple(key.allowed_cidrs or ()), key.rate_limit_per_minute, _aware(key.expires_at))

    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.key_id, self.allowed_channels, self.allowed_jobs,
                         self.allowed_merchants, self.allowed_cidrs, self.rate_limit_per_minute)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """UTC, stated: SQLite gives the stored UTC time back without its zone."""
    return moment.replace(tzinfo=dt.UTC) if moment is not None and moment.tzinfo is None else moment


def key_record(session: Session, key_id: str) -> KeyRecord | None:
    """:func:`active_key` through the lookup cache: None for an unknown, revoked or expired key.

    Only an active key is cached, and its expiry is checked here on every use: a rotated key's grace period ends
    with no write to announce it.
    """
    def load() -> KeyRecord:
        key = active_key(session, key_id)
        return MISSING if key is None else KeyRecord.of(key)

    record = cached(session, ("api_key", key_id), load)
    if record is MISSING:
        return None
    if record.expires_at is not None and record.expires_at <= dt.datetime.now(dt.UTC):
        return None
    return record


def authenticate(session: Session, key_id: str, secret: str) -> Principal:
    """The principal behind a key id and secret; AuthenticationError(E801) for an unknown key or a wrong secret."""
    key = key_record(session, key_id) if isinstance(key_id, str) and isinstance(secret, str) else None
    if key is None or not hmac.compare_digest(key.secret_sha256, hash_secret(secret)):
        raise AuthenticationError(Code.AUTHENTICATION_FAILED, "unknown key or wrong secret")
    return key.principal()


def by_secret(key_id: str, secret: str) -> Authenticator:
    """The HTTP door (and in-process callers): a key id and its secret."""
    return lambda session: authenticate(session, key_id, secret)


def by_envelope(envelope: object, task_name: str, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                *, max_age: float) -> Authenticator:
    """The broker door: the job's signed envelope, checked against the tenant key that signed it."""

    def resolve(session: Session) -> Principal:
        found: dict[str, KeyRecord] = {}

        def key_for(key_id: str) -> bytes | None:
            key = key_record(session, key_id) if isinstance(key_id, str) else None
            if key is None:
                return None
            found[key_id] = key
            return key.secret_sha256.encode()

        try:
            key_id = check(envelope, task_name, task_id, args, kwargs, key_for, now=time.time(), max_age=max_age)
        except EnvelopeError as err:
            code = Code.ENVELOPE_EXPIRED if err.expired else Code.AUTHENTICATION_FAILED
            raise AuthenticationError(code, err.reason, field="hexavox_envelope") from None
        return found[key_id].principal()

    return resolve
