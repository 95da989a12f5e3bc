"""Standard Webhooks signing, checked against the independent ``standardwebhooks`` package.

The verification pass/fail matrix (docs/reliability.md S1): exact bytes pass; a flipped byte, an old or
future timestamp, a wrong secret, a tampered id or missing headers fail; with two secrets signed
(rotation) a receiver that knows either one passes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from worker.callbacks.signing import (
    MIN_SECRET_BYTES,
    SecretError,
    new_secret,
    sign,
    signature_headers,
    verify,
)

# The worked example from the Standard Webhooks / Svix documentation.
GOLDEN_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GOLDEN_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
GOLDEN_TS = 1614265330
GOLDEN_BODY = b'{"test": 2432232314}'
GOLDEN_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = b'{"messageId":"m-1","status":"DELIVERED","to":"+447700900123"}'


def _flip(body: bytes, index: int = 5) -> bytes:
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]


def test_golden_vector_matches_spec_and_reference_library() -> None:
    ours = sign(GOLDEN_SECRET, GOLDEN_ID, GOLDEN_TS, GOLDEN_BODY)
    reference = Webhook(GOLDEN_SECRET).sign(GOLDEN_ID, datetime.fromtimestamp(GOLDEN_TS, tz=UTC), GOLDEN_BODY.decode())
    assert ours == GOLDEN_SIGNATURE
    assert ours == reference


def test_headers_verify_with_reference_library_and_ours() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signature_headers([secret], "msg_1", now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-timestamp"] == str(now)
    assert Webhook(secret).verify(BODY, headers) == {
        "messageId": "m-1",
        "status": "DELIVERED",
        "to": "+447700900123",
    }
    assert verify([secret], headers, BODY, now=now)


def test_flipped_byte_fails_everywhere() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signature_headers([secret], "msg_1", now, BODY)
    tampered = _flip(BODY)
    assert not verify([secret], headers, tampered, now=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


def test_flipped_signature_byte_fails() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signature_headers([secret], "msg_1", now, BODY)
    raw = bytearray(base64.b64decode(headers["webhook-signature"][3:]))
    raw[0] ^= 0x80
    headers["webhook-signature"] = "v1," + base64.b64encode(bytes(raw)).decode()
    assert not verify([secret], headers, BODY, now=now)


def test_old_timestamp_fails_everywhere() -> None:
    secret = new_secret()
    now = int(time.time())
    old = now - 301
    headers = signature_headers([secret], "msg_1", old, BODY)
    assert not verify([secret], headers, BODY, now=now)
    assert verify([secret], headers, BODY, now=now, tolerance=600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers)


def test_future_timestamp_fails() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signature_headers([secret], "msg_1", now + 301, BODY)
    assert not verify([secret], headers, BODY, now=now)


def test_timestamp_at_tolerance_edge_passes() -> None:
    secret = new_secret()
    now = 1_700_000_000
    headers = signature_headers([secret], "msg_1", now - 300, BODY)
    assert verify([secret], headers, BODY, now=now)


def test_rotation_receiver_with_only_the_new_secret_verifies() -> None:
    old_secret, new = new_secret(), new_secret()
    now = int(time.time())
    headers = signature_headers([old_secret, new], "msg_rot", now, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify([new], headers, BODY, now=now)
    assert verify([old_secret], headers, BODY, now=now)
    Webhook(new).verify(BODY, headers)
    Webhook(old_secret).verify(BODY, headers)
    stranger = new_secret()
    assert not verify([stranger], headers, BODY, now=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


def test_receiver_rotating_accepts_either_of_its_secrets() -> None:
    current, upcoming = new_secret(), new_secret()
    now = int(time.time())
    headers = signature_headers([current], "msg_1", now, BODY)
    assert verify([upcoming, current], headers, BODY, now=now)


@pytest.mark.parametrize(
    ("mutate", "passes"),
    [
        pytest.param(lambda h: h, True, id="untouched"),
        pytest.param(lambda h: {k.upper(): v for k, v in h.items()}, True, id="header-case-insensitive"),
        pytest.param(lambda h: {**h, "webhook-id": "msg_other"}, False, id="other-id"),
        pytest.param(lambda h: {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, False, id="ts+1"),
        pytest.param(lambda h: {**h, "webhook-timestamp": "abc"}, False, id="ts-not-number"),
        pytest.param(lambda h: {**h, "webhook-timestamp": "-5"}, False, id="ts-negative"),
        pytest.param(lambda h: {k: v for k, v in h.items() if k != "webhook-signature"}, False, id="no-signature"),
        pytest.param(lambda h: {k: v for k, v in h.items() if k != "webhook-id"}, False, id="no-id"),
        pytest.param(lambda h: {k: v for k, v in h.items() if k != "webhook-timestamp"}, False, id="no-timestamp"),
        pytest.param(lambda h: {**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, False,
                     id="unknown-version"),
        pytest.param(lambda h: {**h, "webhook-signature": "v1,not*base64"}, False, id="garbage-signature"),
        pytest.param(lambda h: {**h, "webhook-signature": "v1a,xx " + h["webhook-signature"]}, True,
                     id="junk-then-valid"),
        pytest.param(lambda h: {**h, "webhook-signature": "v1"}, False, id="empty-signature"),
    ],
)
def test_verification_matrix(mutate: Callable[[dict[str, str]], dict[str, str]], passes: bool) -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signature_headers([secret], "msg_matrix", now, BODY)
    assert verify([secret], mutate(headers), BODY, now=now) is passes


def test_new_secret_is_long_random_and_well_formed() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a[len("whsec_") :])) >= MIN_SECRET_BYTES
    Webhook(a)  # the reference library accepts the format


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_" + base64.b64encode(b"x" * 23).decode(), id="23-bytes"),
        pytest.param(base64.b64encode(b"x" * 32).decode(), id="no-prefix"),
        pytest.param("whsec_not base64!!", id="bad-base64"),
        pytest.param("whsec_", id="empty"),
    ],
)
def test_weak_or_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(SecretError):
        sign(secret, "msg_1", 1, BODY)


def test_unpadded_secret_is_accepted_like_the_reference() -> None:
    key = b"k" * 25
    padded = "whsec_" + base64.b64encode(key).decode()
    unpadded = padded.rstrip("=")
    assert unpadded != padded
    assert sign(unpadded, "msg_1", 1, BODY) == sign(padded, "msg_1", 1, BODY)


@pytest.mark.parametrize("msg_id", ["", "msg 1", "msg\r\nX-Evil: 1", "m.1"])
def test_message_id_that_could_break_the_header_is_refused(msg_id: str) -> None:
    with pytest.raises(ValueError):
        sign(new_secret(), msg_id, 1, BODY)


def test_single_string_instead_of_sequence_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        signature_headers(new_secret(), "msg_1", 1, BODY)
