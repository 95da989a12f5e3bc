"""Signed envelopes: who published a job on the broker, checkable by the worker, with no reusable secret on the wire.

Anyone who can read the broker (a Redis LRANGE, ``celery inspect``, flower) sees every job, so a job must not carry a
bearer secret. Instead its publisher puts an envelope in the message header :data:`HEADER`:

    {"v": 1, "kid": KEY_ID, "ts": UNIX_SECONDS, "nonce": RANDOM_HEX, "sig": HEX_HMAC_SHA256}

``sig`` is HMAC-SHA256, keyed with the publisher's signing key, over the lines of :func:`signing_input`: a fixed
prefix, the key id, the issue time, the nonce, the task name, the task id and the SHA-256 of the canonical JSON of
``[args, kwargs]`` (:func:`body_digest`). Because the task id and name are signed, a captured job cannot be replayed
under a new id or as another task, nor altered; a replay under its own id is answered from the request already
recorded under that id, and one older than the replay window is refused.

Two kinds of publisher sign: a tenant's API key (intake and admin jobs; the signing key is the SHA-256 hex digest of
its secret, which the service keeps and the publisher can compute) and the service itself (internal tasks; the
signing key is derived from ``HEXAVOX_SERVICE_KEY``, which only the service's own processes hold).

This module is pure: it neither reads settings nor touches the database, so the client, the worker and the tests
share it and a non-Python publisher can follow it line by line (the README gives the recipe).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["HEADER", "SERVICE_KEY_ID", "Envelope", "EnvelopeError", "body_digest", "canonical_json", "check",
           "seal", "signing_key"]

#: The message header that carries the envelope (Celery protocol 2 headers; any AMQP/Redis publisher can set it).
HEADER = "hexavox_envelope"
#: The key id the service signs its own internal tasks with.
SERVICE_KEY_ID = "hexavox-service"
_PREFIX = "hexavox-envelope-v1"


class EnvelopeError(Exception):
    """The envelope is missing, malformed, stale, from an unknown key, or its signature does not match."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class Envelope:
    """The parsed header: who signed, when, and the signature."""

    key_id: str
    issued_at: int
    nonce: str
    signature: str

    @classmethod
    def from_header(cls, raw: object) -> Envelope:
        if not isinstance(raw, Mapping):
            raise EnvelopeError("the job is not signed (no hexavox_envelope header)")
        kid, ts, nonce, sig = raw.get("kid"), raw.get("ts"), raw.get("nonce"), raw.get("sig")
        if raw.get("v") != 1 or not isinstance(kid, str) or not 0 < len(kid) <= 64:
            raise EnvelopeError("malformed envelope: v must be 1 and kid a key id")
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise EnvelopeError("malformed envelope: ts must be an integer (unix seconds)")
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 64:
            raise EnvelopeError("malformed envelope: nonce must be 16-64 characters")
        if not isinstance(sig, str) or len(sig) != 64:
            raise EnvelopeError("malformed envelope: sig must be a hex HMAC-SHA256")
        return cls(kid, ts, nonce, sig)

    def as_header(self) -> dict[str, Any]:
        return {"v": 1, "kid": self.key_id, "ts": self.issued_at, "nonce": self.nonce, "sig": self.signature}


def canonical_json(value: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8, no NaN: the same bytes whichever publisher encoded the job."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def body_digest(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``[args, kwargs]``: what the signature says about the job's content."""
    return hashlib.sha256(canonical_json([list(args), dict(kwargs)])).hexdigest()


def signing_key(secret: str) -> bytes:
    """The HMAC key for a secret: its SHA-256 hex digest (what the service stores for a tenant key)."""
    return hashlib.sha256(secret.encode()).hexdigest().encode()


def signing_input(key_id: str, issued_at: int, nonce: str, task_name: str, task_id: str, digest: str) -> bytes:
    return "\n".join((_PREFIX, key_id, str(issued_at), nonce, task_name, task_id, digest)).encode()


def seal(key_id: str, key: bytes, task_name: str, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any],
         *, now: float) -> dict[str, Any]:
    """The envelope header for one job, signed with ``key``."""
    issued_at, nonce = int(now), secrets.token_hex(16)
    message = signing_input(key_id, issued_at, nonce, task_name, task_id, body_digest(args, kwargs))
    signature = hmac.new(key, message, hashlib.sha256).hexdigest()
    return Envelope(key_id, issued_at, nonce, signature).as_header()


def check(raw: object, task_name: str, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any],
          key_for: Callable[[str], bytes | None], *, now: float, max_age: float, max_skew: float = 300.0) -> str:
    """The key id that signed this job; :class:`EnvelopeError` when it cannot be trusted.

    ``key_for`` returns a key id's signing key, or None for an unknown, revoked or expired key. The time checks come
    before the key look-up and the signature, but every failure says only what the publisher needs to fix.
    """
    envelope = Envelope.from_header(raw)
    if envelope.issued_at > now + max_skew:
        raise EnvelopeError("the envelope is dated in the future", expired=True)
    if envelope.issued_at < now - max_age:
        raise EnvelopeError(f"the envelope is older than the replay window ({int(max_age)} s)", expired=True)
    key = key_for(envelope.key_id)
    if key is None:
        raise EnvelopeError("unknown, revoked or expired key")
    try:
        digest = body_digest(args, kwargs)
    except (TypeError, ValueError):
        raise EnvelopeError("the job body is not canonical JSON") from None
    expected = hmac.new(key, signing_input(envelope.key_id, envelope.issued_at, envelope.nonce, task_name, task_id,
                                           digest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, envelope.signature):
        raise EnvelopeError("the signature does not match this job")
    return envelope.key_id
