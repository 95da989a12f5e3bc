"""The shipped JSON Schemas describe the documented shapes, and never promise what the intake refuses.

The models parse several fields as any JSON value, so a wrong type is answered with its
catalogue code; the published schema must still say what to send. These tests read the
files in ``schema/contract/`` (what other services get) and check them against the
runtime checks in :mod:`worker.validation`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from worker.errors import ValidationError
from worker.validation import check_flash_flag, check_sender, check_sms_type, check_unicode_flag, check_voice

from support import REPO

SHIPPED = {path.stem: json.loads(path.read_text()) for path in (REPO / "schema" / "contract").glob("*.json")}
TYPED_KEYWORDS = {"type", "enum", "const", "anyOf", "oneOf", "$ref"}


def _properties(name: str) -> dict[str, Any]:
    properties: dict[str, Any] = SHIPPED[name]["properties"]
    return properties


def _alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))


def _enum(schema: dict[str, Any]) -> list[Any]:
    return [value for option in _alternatives(schema) for value in option.get("enum", [])]


def _accepted(check: Any, value: Any) -> bool:
    try:
        check(value)
    except ValidationError:
        return False
    return True


def _untyped(schema: dict[str, Any], where: str) -> list[str]:
    """Paths of property schemas (nested objects and array items included) that admit any JSON value."""
    found = [] if TYPED_KEYWORDS & schema.keys() else [where]
    for key, child in schema.get("properties", {}).items():
        found += _untyped(child, f"{where}.{key}")
    for option in schema.get("anyOf", []):
        if isinstance(option.get("items"), dict):
            found += _untyped(option["items"], f"{where}[]")
    if isinstance(schema.get("items"), dict):
        found += _untyped(schema["items"], f"{where}[]")
    return found


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_published_field_has_a_type(name: str) -> None:
    # Given the shipped schema of one job, with the definitions it refers to
    schema = SHIPPED[name]
    definitions = schema.get("$defs", {})
    # Then no field, nested or not, is an untyped "any JSON value"
    untyped = [path for key, child in schema["properties"].items() for path in _untyped(child, key)]
    untyped += [path for key, child in definitions.items() for path in _untyped(child, f"$defs.{key}")]
    assert untyped == []
    assert "JsonValue" not in definitions


def test_the_sms_schema_publishes_the_documented_shapes() -> None:
    sms = _properties("hexavox.sms.send.v1")
    # `to` is a string (one number or comma-separated) or a list of strings
    assert {"type": "string"} in _alternatives(sms["to"])
    assert {"type": "array", "items": {"type": "string"}} in _alternatives(sms["to"])
    assert {o.get("type") for o in _alternatives(sms["to"])} == {"string", "array", "null"}
    assert sms["type"]["enum"] == ["OTP", "TXN", "MKT"]
    assert _enum(sms["unicode"]) == [0, 1, "0", "1", "AUTO"]
    assert _enum(sms["flash"]) == [0, 1, "0", "1"]
    assert {o.get("type") for o in _alternatives(sms["time"])} == {"string", "null"}
    # And the fields the policy refuses a job without are required, with one of to | listId | sms
    assert {"merchantId", "sender", "type"} <= set(SHIPPED["hexavox.sms.send.v1"]["required"])
    assert SHIPPED["hexavox.sms.send.v1"]["anyOf"] == [{"required": ["to"]}, {"required": ["listId"]},
                                                       {"required": ["sms"]}]


def test_the_voice_and_email_schemas_publish_the_documented_shapes() -> None:
    voice, email = _properties("hexavox.voice.send.v1"), _properties("hexavox.email.send.v1")
    assert voice["type"]["enum"] == ["OTP", "TXN", "MKT", "REMINDER"]
    assert voice["record"]["type"] == "boolean"
    assert (voice["timeoutSeconds"]["type"], voice["timeoutSeconds"]["minimum"],
            voice["timeoutSeconds"]["maximum"]) == ("integer", 5, 120)
    assert voice["to"]["type"] == voice["text"]["type"] == "string"
    assert email["type"]["enum"] == ["TRANSACTIONAL", "MARKETING"]
    assert email["to"]["type"] == email["subject"]["type"] == email["body"]["type"] == "string"
    assert {"to", "subject", "body"} <= set(SHIPPED["hexavox.email.send.v1"]["required"])


def test_every_published_value_of_a_lenient_field_is_accepted_by_the_intake() -> None:
    # Given the values the SMS and voice schemas promise, Then the runtime checks accept each of them
    sms, voice = _properties("hexavox.sms.send.v1"), _properties("hexavox.voice.send.v1")
    assert all(_accepted(check_unicode_flag, value) for value in _enum(sms["unicode"]))
    assert all(_accepted(check_flash_flag, value) for value in [*_enum(sms["flash"]), True, False])
    assert all(_accepted(check_sms_type, value) for value in sms["type"]["enum"])
    low, high = voice["timeoutSeconds"]["minimum"], voice["timeoutSeconds"]["maximum"]
    assert _accepted(lambda t: check_voice("hi", t), low) and _accepted(lambda t: check_voice("hi", t), high)
    # And just outside the published range the intake refuses: the schema is not narrower than it must be
    assert not _accepted(lambda t: check_voice("hi", t), low - 1)
    assert not _accepted(lambda t: check_voice("hi", t), high + 1)
    assert not _accepted(lambda t: check_voice("a" * (voice["text"]["maxLength"] + 1)), 30)


@pytest.mark.parametrize("sender", ["GYMA", "A1B2C3D4E5F", "ABCDEFGHIJKL", "AB", "1" * 15, "1" * 16, "+123",
                                    "+12", "GYM A", "12345", "ÄBC", "٣٣٣٣"])
def test_the_published_sender_pattern_matches_the_intake(sender: str) -> None:
    # Given the shipped sender patterns (anchored, ECMA-262 syntax that Python's re reads the same way)
    patterns = [option["pattern"] for option in _alternatives(_properties("hexavox.sms.send.v1")["sender"])]
    # Then a sender matches one of them exactly when the intake accepts it
    assert any(re.search(p, sender) for p in patterns) == _accepted(check_sender, sender)


# --- the schemas through an independent validator -----------------------------------------------------------------

AUTH = {"keyId": "hxk_0123456789abcdef", "secret": "s3cret"}
VALID: list[tuple[str, dict[str, Any]]] = [
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "to": "+18135551234", "body": "Your OTP is 482913",
                             "sender": "GYMA", "type": "OTP"}),
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "to": ["+18135551234", "+18135551235"], "body": "Class at 6",
                             "sender": "GYMA", "type": "TXN", "unicode": "AUTO", "flash": 0,
                             "time": "24-12-2026 09:30:00", "dlrUrl": "https://gym.example/dlr"}),
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "sender": "GYMA", "type": "MKT", "body": "Sale",
                             "sms": [{"to": "+18135551234"}, {"to": "+18135551235", "body": "Sale, Ann"}]}),
    ("hexavox.voice.send.v1", {"merchantId": "gym-a", "to": "+18135551234", "text": "Your class starts soon",
                               "type": "REMINDER", "record": False, "timeoutSeconds": 30}),
    ("hexavox.email.send.v1", {"merchantId": "gym-a", "to": "ann@example.com", "subject": "Receipt",
                               "body": "<p>Thanks</p>", "type": "TRANSACTIONAL"}),
    ("hexavox.merchant.upsert.v1", {"merchantId": "gym-a", "displayName": "Gym A", "smsLimit": 5000,
                                    "routes": {"MKT": False}, "providers": {"SMS": ["primary", "backup"]},
                                    "providersByType": {"SMS": {"OTP": ["fast-otp"]}}}),
    ("hexavox.consent.upsert.v1", {"merchantId": "gym-a", "channel": "SMS", "contact": "+18135551234",
                                   "status": "OPT_IN"}),
]
INVALID = [
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "to": "+18135551234", "body": "x", "sender": "GYMA",
                             "type": "PROMO"}),
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "to": 18135551234, "body": "x", "sender": "GYMA", "type": "TXN"}),
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "to": "+18135551234", "body": "x", "sender": "GYMA",
                             "type": "TXN", "unicode": 2}),
    ("hexavox.sms.send.v1", {"merchantId": "gym-a", "body": "x", "sender": "GYMA", "type": "TXN"}),  # no recipient
    ("hexavox.voice.send.v1", {"merchantId": "gym-a", "to": "+18135551234", "text": "hi", "timeoutSeconds": 500}),
    ("hexavox.email.send.v1", {"merchantId": "gym-a", "to": "ann@example.com", "subject": "s", "body": "b",
                               "type": "NEWSLETTER"}),
    ("hexavox.merchant.upsert.v1", {"merchantId": "gym-a", "displayName": "Gym A",
                                    "providersByType": {"SMS": {"BULK": ["cheap"]}}}),
    ("hexavox.consent.upsert.v1", {"merchantId": "gym-a", "channel": "FAX", "contact": "+18135551234",
                                   "status": "OPT_IN"}),
]


def _validator(name: str) -> Any:
    import jsonschema

    schema = SHIPPED[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("name", "payload"), VALID, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VALID)])
def test_documented_payloads_validate_against_the_shipped_schema(name: str, payload: dict[str, Any]) -> None:
    errors = [e.message for e in _validator(name).iter_errors(payload)]
    assert errors == []


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_no_schema_lets_credentials_travel_in_the_payload(name: str) -> None:
    """A broker job proves its publisher with a signed envelope header; a secret in the body is not the contract."""
    assert "auth" not in SHIPPED[name]["properties"]
    assert not _validator(name).is_valid({**VALID[0][1], "auth": AUTH})


@pytest.mark.parametrize(("name", "payload"), INVALID, ids=[f"{n}-{i}" for i, (n, _) in enumerate(INVALID)])
def test_wrongly_shaped_payloads_do_not_validate(name: str, payload: dict[str, Any]) -> None:
    assert not _validator(name).is_valid(payload)
