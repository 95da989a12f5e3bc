"""Small request fields: each accepted form, and the exact code for each refusal."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.fields import (
    EmailContent,
    VoiceRequest,
    check_campaign_name,
    check_channel,
    check_email_content,
    check_flash_flag,
    check_ref,
    check_sender,
    check_sms_type,
    check_unicode_flag,
    check_voice,
)

OK = object()  # marks a case that must be accepted unchanged


def _refused(check: Callable[[object], object], value: object) -> Code:
    with pytest.raises(ValidationError) as caught:
        check(value)
    return caught.value.code


sender_cases = (
    ("HEXAVX", OK),
    ("Hexa1", OK),
    ("abc", OK),
    ("ABCDEFGHIJK", OK),  # 11
    ("1a2", OK),
    ("123", OK),
    ("+123456789012345", OK),  # 15 digits
    ("919876543210", OK),
    (None, Code.SENDER_REQUIRED),
    ("", Code.SENDER_REQUIRED),
    ("ab", Code.INVALID_SENDER_PATTERN),
    ("ABCDEFGHIJKL", Code.INVALID_SENDER_PATTERN),  # 12
    ("12", Code.INVALID_SENDER_PATTERN),
    ("1234567890123456", Code.INVALID_SENDER_PATTERN),  # 16 digits
    ("+HEXA", Code.INVALID_SENDER_PATTERN),
    ("HEXA VOX", Code.INVALID_SENDER_PATTERN),
    ("HEXA-VOX", Code.INVALID_SENDER_PATTERN),
    (" HEXA", Code.INVALID_SENDER_PATTERN),
    ("HÉXA", Code.INVALID_SENDER_PATTERN),
    ("١٢٣٤", Code.INVALID_SENDER_PATTERN),  # Arabic-Indic digits
    ("HEXA\n", Code.INVALID_SENDER_PATTERN),
    (12345, Code.INVALID_SENDER_PATTERN),
    (True, Code.INVALID_SENDER_PATTERN),
)


@pytest.mark.parametrize(("value", "expected"), sender_cases)
def test_sender_ids_are_alphanumeric_3_to_11_or_numeric_3_to_15(value: object, expected: object) -> None:
    if expected is OK:
        assert check_sender(value) == value
    else:
        assert _refused(check_sender, value) is expected


ref_cases = (
    (None, None),
    ("", None),
    ("abc123", "abc123"),
    ("A" * 40, "A" * 40),
    ("A" * 41, Code.INVALID_REF),
    ("order-1", Code.INVALID_REF),
    ("order 1", Code.INVALID_REF),
    ("ordér", Code.INVALID_REF),
    (123, Code.INVALID_REF),
)


@pytest.mark.parametrize(("value", "expected"), ref_cases)
def test_refs_are_optional_and_alphanumeric_up_to_40(value: object, expected: object) -> None:
    if isinstance(expected, Code):
        assert _refused(check_ref, value) is expected
    else:
        assert check_ref(value) == expected


campaign_cases = (
    (None, None),
    ("", None),
    ("Spring2025", "Spring2025"),
    ("C" * 32, "C" * 32),
    ("C" * 33, Code.INVALID_CAMPAIGN_NAME),
    ("Spring sale", Code.INVALID_CAMPAIGN_NAME),
    ("sale!", Code.INVALID_CAMPAIGN_NAME),
    (2025, Code.INVALID_CAMPAIGN_NAME),
)


@pytest.mark.parametrize(("value", "expected"), campaign_cases)
def test_campaign_names_are_optional_and_alphanumeric_up_to_32(value: object, expected: object) -> None:
    if isinstance(expected, Code):
        assert _refused(check_campaign_name, value) is expected
    else:
        assert check_campaign_name(value) == expected


unicode_cases = (
    (None, "AUTO"),
    ("AUTO", "AUTO"),
    ("auto", "AUTO"),
    ("0", "0"),
    ("1", "1"),
    (0, "0"),
    (1, "1"),
    (2, Code.INVALID_UNICODE_FLAG),
    ("2", Code.INVALID_UNICODE_FLAG),
    ("", Code.INVALID_UNICODE_FLAG),
    (True, Code.INVALID_UNICODE_FLAG),
    (False, Code.INVALID_UNICODE_FLAG),
    (1.0, Code.INVALID_UNICODE_FLAG),
    ("yes", Code.INVALID_UNICODE_FLAG),
)


@pytest.mark.parametrize(("value", "expected"), unicode_cases)
def test_the_unicode_flag_is_0_1_or_auto(value: object, expected: object) -> None:
    if isinstance(expected, Code):
        assert _refused(check_unicode_flag, value) is expected
    else:
        assert check_unicode_flag(value) == expected


flash_cases = (
    (None, False),
    (0, False),
    (1, True),
    ("0", False),
    ("1", True),
    (True, True),
    (False, False),
    (2, Code.INVALID_FLASH_FLAG),
    (1.0, Code.INVALID_FLASH_FLAG),
    ("true", Code.INVALID_FLASH_FLAG),
    ("", Code.INVALID_FLASH_FLAG),
    ([1], Code.INVALID_FLASH_FLAG),
)


@pytest.mark.parametrize(("value", "expected"), flash_cases)
def test_the_flash_flag_is_0_or_1(value: object, expected: object) -> None:
    if isinstance(expected, Code):
        assert _refused(check_flash_flag, value) is expected
    else:
        assert check_flash_flag(value) is expected


type_cases = (
    ("TXN", "TXN"),
    ("mkt", "MKT"),
    ("Otp", "OTP"),
    (None, Code.TYPE_REQUIRED),
    ("", Code.TYPE_REQUIRED),
    ("  ", Code.TYPE_REQUIRED),
    ("TXT", Code.INVALID_TYPE),  # the seed's typo is not a type
    ("SMS", Code.INVALID_TYPE),
    (1, Code.INVALID_TYPE),
)


@pytest.mark.parametrize(("value", "expected"), type_cases)
def test_the_sms_type_is_txn_mkt_or_otp(value: object, expected: object) -> None:
    if isinstance(expected, Code):
        assert _refused(check_sms_type, value) is expected
    else:
        assert check_sms_type(value) == expected


channel_cases = (
    ("SMS", "SMS"),
    ("voice", "VOICE"),
    ("Email", "EMAIL"),
    (None, Code.INVALID_CHANNEL),
    ("", Code.INVALID_CHANNEL),
    ("WHATSAPP", Code.INVALID_CHANNEL),
    (1, Code.INVALID_CHANNEL),
)


@pytest.mark.parametrize(("value", "expected"), channel_cases)
def test_the_channel_is_sms_voice_or_email(value: object, expected: object) -> None:
    if isinstance(expected, Code):
        assert _refused(check_channel, value) is expected
    else:
        assert check_channel(value) == expected


voice_ok = (
    ("Your code is 1 2 3 4", 30, False),
    ("x", 5, True),
    ("x" * 3000, 120, False),
)


@pytest.mark.parametrize(("text", "timeout", "record"), voice_ok)
def test_voice_requests_within_limits_are_accepted(text: str, timeout: int, record: bool) -> None:
    assert check_voice(text, timeout, record) == VoiceRequest(text, timeout, record)


def test_voice_defaults_are_a_30_second_ring_without_recording() -> None:
    assert check_voice("hello") == VoiceRequest("hello", 30, False)


voice_refused = (
    ("", 30, False, "text"),
    ("   ", 30, False, "text"),
    (None, 30, False, "text"),
    ("x" * 3001, 30, False, "text"),
    (42, 30, False, "text"),
    ("hi", 4, False, "timeoutSeconds"),
    ("hi", 121, False, "timeoutSeconds"),
    ("hi", 30.0, False, "timeoutSeconds"),
    ("hi", "30", False, "timeoutSeconds"),
    ("hi", True, False, "timeoutSeconds"),
    ("hi", None, False, "timeoutSeconds"),
    ("hi", 30, 1, "record"),
    ("hi", 30, "true", "record"),
    ("hi", 30, None, "record"),
)


@pytest.mark.parametrize(("text", "timeout", "record", "field"), voice_refused)
def test_voice_requests_outside_limits_are_refused(text: object, timeout: object, record: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_voice(text, timeout, record)
    assert caught.value.code is Code.INVALID_VOICE_REQUEST
    assert caught.value.field == field


def test_email_content_within_limits_is_accepted() -> None:
    body = "é" * (256 * 1024)  # exactly 512 KB in UTF-8
    assert check_email_content("S" * 998, body) == EmailContent("S" * 998, body)
    assert check_email_content("Your receipt", "<p>Thanks</p>\r\n") == EmailContent("Your receipt", "<p>Thanks</p>\r\n")


email_refused = (
    ("", "body", "subject"),
    ("  ", "body", "subject"),
    (None, "body", "subject"),
    ("S" * 999, "body", "subject"),
    ("Hi\r\nBcc: victim@example.com", "body", "subject"),
    ("Hi\nthere", "body", "subject"),
    ("Hi\rthere", "body", "subject"),
    ("Hi\x00", "body", "subject"),
    ("Hi\u2028there", "body", "subject"),
    ("=?UTF-8?Q?=0A?=Bcc: victim@example.com", "body", "subject"),
    (42, "body", "subject"),
    ("Hi", "", "body"),
    ("Hi", " \n ", "body"),
    ("Hi", None, "body"),
    ("Hi", b"bytes", "body"),
    ("Hi", "é" * (256 * 1024) + "x", "body"),  # one byte over 512 KB
    ("Hi", "bad \ud800 half", "body"),
)


@pytest.mark.parametrize(("subject", "body", "field"), email_refused)
def test_email_content_that_is_missing_too_long_or_injecting_is_refused(
    subject: object, body: object, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        check_email_content(subject, body)
    assert caught.value.code is Code.INVALID_EMAIL_CONTENT
    assert caught.value.field == field


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=50),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
)

single_checks: tuple[tuple[Callable[[object], object], frozenset[Code]], ...] = (
    (check_sender, frozenset({Code.SENDER_REQUIRED, Code.INVALID_SENDER_PATTERN})),
    (check_ref, frozenset({Code.INVALID_REF})),
    (check_campaign_name, frozenset({Code.INVALID_CAMPAIGN_NAME})),
    (check_unicode_flag, frozenset({Code.INVALID_UNICODE_FLAG})),
    (check_flash_flag, frozenset({Code.INVALID_FLASH_FLAG})),
    (check_sms_type, frozenset({Code.TYPE_REQUIRED, Code.INVALID_TYPE})),
    (check_channel, frozenset({Code.INVALID_CHANNEL})),
)


@pytest.mark.parametrize(("check", "codes"), single_checks)
@settings(max_examples=300)
@given(value=anything)
def test_any_value_is_accepted_or_refused_with_the_fields_own_code(
    check: Callable[[object], object], codes: frozenset[Code], value: object
) -> None:
    try:
        check(value)
    except ValidationError as exc:
        assert exc.code in codes


@settings(max_examples=300)
@given(anything, anything, anything)
def test_any_voice_request_is_accepted_or_refused_as_invalid_voice_request(
    text: object, timeout: object, record: object
) -> None:
    try:
        check_voice(text, timeout, record)
    except ValidationError as exc:
        assert exc.code is Code.INVALID_VOICE_REQUEST


@settings(max_examples=300)
@given(anything, anything)
def test_any_email_content_is_accepted_or_refused_as_invalid_email_content(subject: object, body: object) -> None:
    try:
        content = check_email_content(subject, body)
    except ValidationError as exc:
        assert exc.code is Code.INVALID_EMAIL_CONTENT
        return
    assert "\n" not in content.subject and "\r" not in content.subject


# -- seed 000's other parameters (port, duplicate, ref1, ref2, campaign id) --------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), (5000, 5000), ("5000", 5000), ("1", 1), (65535, 65535), ("00080", 80),
    (0, Code.INVALID_PORT), (65536, Code.INVALID_PORT), ("80a", Code.INVALID_PORT), ("-1", Code.INVALID_PORT),
    (True, Code.INVALID_PORT), (80.0, Code.INVALID_PORT), ("٨٠", Code.INVALID_PORT), ("123456", Code.INVALID_PORT),
])
def test_check_port(value: object, expected: object) -> None:
    from worker.validation.fields import check_port

    if isinstance(expected, Code):
        assert _refused(check_port, value) is expected
    else:
        assert check_port(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), (0, False), ("0", False), (False, False), (1, True), ("1", True), (True, True),
    (2, Code.INVALID_DUPLICATE_FLAG), ("yes", Code.INVALID_DUPLICATE_FLAG), (1.0, Code.INVALID_DUPLICATE_FLAG),
])
def test_check_duplicate_flag(value: object, expected: object) -> None:
    from worker.validation.fields import check_duplicate_flag

    if isinstance(expected, Code):
        assert _refused(check_duplicate_flag, value) is expected
    else:
        assert check_duplicate_flag(value) is expected


@pytest.mark.parametrize(("check", "code"), [("check_ref1", Code.INVALID_REF1), ("check_ref2", Code.INVALID_REF2)])
def test_ref1_and_ref2_are_alphanumeric_like_ref(check: str, code: Code) -> None:
    from worker.validation import fields

    function = getattr(fields, check)
    assert function("Branch7") == "Branch7" and function(None) is None and function("") is None
    for bad in ("ab-1", "a b", 7, "x" * 41, "héllo"):
        assert _refused(function, bad) is code


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("spring-26", "spring-26"), ("c.1_x", "c.1_x"),
    ("", Code.CAMPAIGN_ID_REQUIRED), ("   ", Code.CAMPAIGN_ID_REQUIRED),
    ("a b", Code.INVALID_INPUT), (12, Code.INVALID_INPUT), ("x" * 65, Code.INVALID_INPUT),
])
def test_check_campaign_id(value: object, expected: object) -> None:
    from worker.validation.fields import check_campaign_id

    if isinstance(expected, Code):
        assert _refused(check_campaign_id, value) is expected
    else:
        assert check_campaign_id(value) == expected
