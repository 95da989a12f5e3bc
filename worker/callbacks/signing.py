"""Standard Webhooks signatures for merchant delivery-report callbacks.

Merchants verify our callbacks with any Standard Webhooks library (Svix, ``standardwebhooks``), so
we implement the scheme exactly: HMAC-SHA256 over ``"{id}.{timestamp}." + body`` with the raw bytes
that go on the wire (never re-serialised JSON), sent as ``webhook-signature: v1,<base64>``. The
header holds one signature per active secret, space-separated, so a merchant can rotate keys
without a window in which callbacks fail. Each merchant endpoint has its own secret of at least
24 random bytes (``whsec_<base64>``): one secret shared by all merchants would let any merchant
forge callbacks to any other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping, Sequence

from worker.errors import HexavoxError

__all__ = [
    "SECRET_PREFIX",
    "MIN_SECRET_BYTES",
    "DEFAULT_TOLERANCE_SECONDS",
    "SecretError",
    "sign",
    "signature_headers",
    "verify",
    "new_secret",
]

SECRET_PREFIX = "whsec_"
#: The spec's floor: shorter keys are guessable offline from one captured callback.
MIN_SECRET_BYTES = 24
#: Svix and ``standardwebhooks`` reject timestamps more than five minutes off; we match them.
DEFAULT_TOLERANCE_SECONDS = 300
#: Bytes of randomness in a fresh secret; above the floor so rotation never has to lengthen keys.
_NEW_SECRET_BYTES = 32
#: A message id goes into a header and into the signed string: printable ASCII, no spaces or dots.
_MSG_ID = re.compile(r"^[A-Za-z0-9_\-:]{1,256}$")
#: Receivers stop after this many candidate signatures so a hostile header cannot cost unbounded HMACs.
_MAX_SIGNATURES = 16

_ID_HEADER = "webhook-id"
_TIMESTAMP_HEADER = "webhook-timestamp"
_SIGNATURE_HEADER = "webhook-signature"


class SecretError(HexavoxError, ValueError):
    """A stored signing secret is malformed or too short; fix the merchant's endpoint record."""


def _key(secret: str) -> bytes:
    """Decode ``whsec_<base64>`` to the HMAC key, refusing anything that is not a real secret.

    Strict base64 (padding added if the sender dropped it) so a typo cannot silently shorten the key.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise SecretError(f"signing secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretError("signing secret is not valid base64") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise SecretError(f"signing secret must decode to at least {MIN_SECRET_BYTES} bytes, got {len(key)}")
    return key


def _check_id(msg_id: str) -> None:
    """A message id with spaces or line breaks would corrupt the header (or inject one)."""
    if not _MSG_ID.match(msg_id):
        raise ValueError("webhook message id must be 1-256 characters of [A-Za-z0-9_-:]")


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode("ascii") + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` exactly as it will be sent."""
    _check_id(msg_id)
    if timestamp < 0:
        raise ValueError("webhook timestamp must be a non-negative Unix time")
    digest = _mac(_key(secret), msg_id, timestamp, body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every active secret (key rotation)."""
    if isinstance(secrets, str):
        raise TypeError("pass a sequence of secrets, not a single string")
    if not secrets:
        raise SecretError("at least one signing secret is required")
    return {
        _ID_HEADER: msg_id,
        _TIMESTAMP_HEADER: str(timestamp),
        _SIGNATURE_HEADER: " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets),
    }


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` by any of ``secrets`` within ``tolerance``.

    The receiving side of :func:`signature_headers`, used by our own tests and the callback simulator.
    Malformed input is a plain ``False`` (a receiver must not crash on hostile headers); only our own
    broken secrets raise. Signatures are compared with :func:`hmac.compare_digest` so timing does not
    leak how many leading bytes matched, and old or future timestamps are refused so a captured
    callback cannot be replayed later.
    """
    if isinstance(secrets, str):
        raise TypeError("pass a sequence of secrets, not a single string")
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(_ID_HEADER, "")
    raw_timestamp = lowered.get(_TIMESTAMP_HEADER, "")
    raw_signatures = lowered.get(_SIGNATURE_HEADER, "")
    if not (msg_id and raw_timestamp and raw_signatures) or not _MSG_ID.match(msg_id):
        return False
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        return False
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > tolerance:
        return False
    expected = [_mac(_key(secret), msg_id, timestamp, body) for secret in secrets]
    for candidate in raw_signatures.split(" ")[:_MAX_SIGNATURES]:
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Check every expected key without an early exit per key, so timing says nothing about which matched.
        if any([hmac.compare_digest(given, digest) for digest in expected]):
            return True
    return False


def new_secret() -> str:
    """A fresh per-endpoint secret from the OS CSPRNG, in the ``whsec_`` form merchants paste into their libraries."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(_NEW_SECRET_BYTES)).decode("ascii")
