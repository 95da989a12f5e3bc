"""Phone numbers: what is accepted, what is refused with which code, and that nothing else escapes.

Numbers the installed ``phonenumbers`` metadata calls valid (checked when these tests were written):

* +18135551234  US  FIXED_LINE_OR_MOBILE  (the project demo's number: valid for SMS)
* +12015550123  US  FIXED_LINE_OR_MOBILE
* +447400123456 GB  MOBILE
* +447911123456 GG  MOBILE  (+44 7911 is Guernsey in the metadata, not GB)
* +919876543210 IN  MOBILE
* +442079460958 GB  FIXED_LINE; +19005551234 US PREMIUM_RATE; +18003569377 US TOLL_FREE
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.masking import mask_email, mask_phone
from worker.validation.phone import normalize_phone, phone_prefix

accepted = (
    ("+18135551234", "+18135551234"),
    ("+1 (813) 555-1234", "+18135551234"),
    ("+1.813.555.1234", "+18135551234"),
    ("  +18135551234  ", "+18135551234"),
    ("+１８１３５５５１２３４", "+18135551234"),  # full-width digits normalise
    ("+12015550123", "+12015550123"),
    ("+447400123456", "+447400123456"),
    ("+44 (0) 7911 123456", "+447911123456"),
    ("+919876543210", "+919876543210"),
    ("+91 98765 43210", "+919876543210"),
    ("+447012345678", "+447012345678"),  # PERSONAL_NUMBER
    ("+445612345678", "+445612345678"),  # VOIP
)


@pytest.mark.parametrize(("raw", "expected"), accepted)
def test_valid_mobile_numbers_come_back_in_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


refused = (
    ("", Code.INVALID_MOBILE_NUMBER),
    ("   ", Code.INVALID_MOBILE_NUMBER),
    ("8135551234", Code.INVALID_MOBILE_NUMBER),  # no '+' and no default region
    ("07911 123456", Code.INVALID_MOBILE_NUMBER),
    ("+1 800 FLOWERS", Code.INVALID_MOBILE_NUMBER),  # vanity letters the library would map to digits
    ("+44 20 7946 0958 ext. 123", Code.INVALID_MOBILE_NUMBER),
    ("+1 813 555 1234 #123", Code.INVALID_MOBILE_NUMBER),
    ("+1 813 555 1234;1", Code.INVALID_MOBILE_NUMBER),  # the library reads ';1' as an extension
    ("tel:+1-813-555-1234", Code.INVALID_MOBILE_NUMBER),
    ("+1 813 555 1234 !!", Code.INVALID_MOBILE_NUMBER),  # trailing junk the library would cut
    ("+18135551234,+12125551234", Code.INVALID_MOBILE_NUMBER),
    ("+4479111234567", Code.INVALID_MOBILE_NUMBER),  # not possible
    ("+441632960123", Code.INVALID_MOBILE_NUMBER),  # possible, not valid (drama range)
    ("+88212345678", Code.INVALID_MOBILE_NUMBER),
    ("+" + "1" * 70, Code.INVALID_MOBILE_NUMBER),  # over 64 characters
    ("+18135551234\n", Code.INVALID_MOBILE_NUMBER),
    ("+442079460958", Code.INVALID_NUMBER_TYPE),  # FIXED_LINE, SMS
    ("+18003569377", Code.INVALID_NUMBER_TYPE),  # TOLL_FREE, SMS
    ("+19005551234", Code.INVALID_NUMBER_TYPE),  # PREMIUM_RATE
    ("+449012345678", Code.INVALID_NUMBER_TYPE),  # PREMIUM_RATE
    ("+9118603451234", Code.INVALID_NUMBER_TYPE),  # SHARED_COST
    ("+445512345678", Code.INVALID_NUMBER_TYPE),  # UAN
    ("+49177991234567", Code.INVALID_NUMBER_TYPE),  # VOICEMAIL
    ("+447640123456", Code.INVALID_NUMBER_TYPE),  # PAGER
)


@pytest.mark.parametrize(("raw", "code"), refused)
def test_doubtful_or_unreachable_numbers_are_refused_with_their_code(raw: str, code: Code) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw)
    assert caught.value.code is code
    assert caught.value.field == "to"


@pytest.mark.parametrize("raw", (None, 18135551234, b"+18135551234", ["+18135551234"], 1.5, True))
def test_anything_but_text_is_not_a_mobile_number(raw: object) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw)  # type: ignore[arg-type]
    assert caught.value.code is Code.INVALID_MOBILE_NUMBER


voice_cases = (
    ("+442079460958", "+442079460958"),
    ("+18003569377", "+18003569377"),
    ("+18135551234", "+18135551234"),
)


@pytest.mark.parametrize(("raw", "expected"), voice_cases)
def test_voice_calls_may_reach_landlines_and_toll_free_numbers(raw: str, expected: str) -> None:
    assert normalize_phone(raw, channel="VOICE") == expected


@pytest.mark.parametrize("raw", ("+19005551234", "+9118603451234", "+447640123456"))
def test_voice_calls_never_reach_premium_shared_cost_or_pagers(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw, channel="VOICE")
    assert caught.value.code is Code.INVALID_NUMBER_TYPE


def test_an_unknown_channel_is_refused_as_a_channel_error() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone("+18135551234", channel="EMAIL")
    assert caught.value.code is Code.INVALID_CHANNEL


def test_a_default_region_lets_national_numbers_in() -> None:
    assert normalize_phone("07400 123456", default_region="GB") == "+447400123456"


country_cases = (
    ("+18135551234", ("US",), None),
    ("+18135551234", ("us", "GB"), None),
    ("+447400123456", ("GB",), None),
    ("+447911123456", ("GB",), Code.DESTINATION_NOT_ALLOWED),  # Guernsey is its own region
    ("+919876543210", ("US", "GB"), Code.DESTINATION_NOT_ALLOWED),
)


@pytest.mark.parametrize(("raw", "allowed", "code"), country_cases)
def test_destinations_outside_the_allowed_countries_are_refused(
    raw: str, allowed: tuple[str, ...], code: Code | None
) -> None:
    if code is None:
        assert normalize_phone(raw, allowed_countries=allowed) == raw
        return
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw, allowed_countries=allowed)
    assert caught.value.code is code


def test_the_field_name_is_carried_on_the_refusal() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone("nope", field="sms[3].to")
    assert caught.value.field == "sms[3].to"


def test_refusals_never_show_the_whole_number() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone("+19005551234")
    assert "19005551234" not in str(caught.value)
    assert "+1******1234" in caught.value.detail


prefix_cases = (
    ("+18135551234", "+1813555"),
    ("+447400123456", "+44740012"),
    ("+919876543210", "+91987654"),
)


@pytest.mark.parametrize(("e164", "prefix"), prefix_cases)
def test_the_prefix_is_the_number_without_its_last_four_digits(e164: str, prefix: str) -> None:
    assert phone_prefix(e164) == prefix


@pytest.mark.parametrize("raw", ("18135551234", "+1 813 555 1234", "+0123456789", "+12", "", None))
def test_a_prefix_is_only_taken_from_e164(raw: object) -> None:
    with pytest.raises(ValidationError) as caught:
        phone_prefix(raw)  # type: ignore[arg-type]
    assert caught.value.code is Code.INVALID_MOBILE_NUMBER


mask_cases = (
    ("+18135551234", "+1******1234"),
    ("+447400123456", "+44******3456"),
    ("+5000000", "+***0000"),
    ("+50012345", "+****2345"),
    ("+919876543210", "+91******3210"),
    ("8135551234", "******1234"),
    ("123456", "***"),
    ("no digits", "***"),
    (None, "***"),
)


@pytest.mark.parametrize(("raw", "masked"), mask_cases)
def test_masked_numbers_keep_the_country_code_and_last_four_digits(raw: object, masked: str) -> None:
    assert mask_phone(raw) == masked


email_mask_cases = (
    ("mary@example.com", "m***@example.com"),
    ("@example.com", "***@example.com"),
    ("no-at-sign", "***"),
    ("a\r\nb@x.com", "a***@x.com"),
    ("\nb@x.com", "?***@x.com"),
    (42, "***"),
)


@pytest.mark.parametrize(("raw", "masked"), email_mask_cases)
def test_masked_addresses_keep_the_first_character_and_the_domain(raw: object, masked: str) -> None:
    assert mask_email(raw) == masked


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(max_size=80),
        st.text(alphabet="+0123456789 -().#;x", max_size=30),
        st.none(),
        st.integers(),
        st.binary(),
    )
)
def test_any_input_gives_e164_or_a_coded_refusal(raw: object) -> None:
    try:
        number = normalize_phone(raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        assert exc.code in (Code.INVALID_MOBILE_NUMBER, Code.INVALID_NUMBER_TYPE)
        return
    assert number.startswith("+") and number[1:].isdigit()
    assert normalize_phone(number) == number


@settings(max_examples=300)
@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_digit_strings_with_a_plus_never_crash_and_never_leak_into_details(raw: str) -> None:
    try:
        normalize_phone(raw, channel="VOICE", allowed_countries=("US", "GB"))
    except ValidationError as exc:
        assert raw[1:] not in exc.detail


_NOT_A_NUMBER = "not a phone number"
_CHARACTERS = "only digits, spaces and + - . ( ) are allowed"
_PLUS = "'+' may only start the number"
_UNPARSED = "cannot be parsed (a leading '+' is needed)"
_INVALID = "not a valid number"

exact_refusals: tuple[tuple[object, dict[str, object], Code, str, str | None, str], ...] = (
    # (raw, keyword arguments, code, field, the number the detail masks, why)
    ("   ", {}, Code.INVALID_MOBILE_NUMBER, "to", "   ", _NOT_A_NUMBER),
    (None, {}, Code.INVALID_MOBILE_NUMBER, "to", None, _NOT_A_NUMBER),
    ("+18135551234" + " " * 53, {}, Code.INVALID_MOBILE_NUMBER, "to", "+18135551234", _NOT_A_NUMBER),  # 65 chars
    ("tel:+18135551234", {"field": "sms[0].to"}, Code.INVALID_MOBILE_NUMBER, "sms[0].to", "tel:+18135551234",
     _CHARACTERS),
    ("++18135551234", {}, Code.INVALID_MOBILE_NUMBER, "to", "++18135551234", _PLUS),  # the library takes it
    ("+18135551234+", {}, Code.INVALID_MOBILE_NUMBER, "to", "+18135551234+", _PLUS),  # the library takes it
    ("+1813+5551234", {}, Code.INVALID_MOBILE_NUMBER, "to", "+1813+5551234", _PLUS),
    ("8135551234", {"field": "list"}, Code.INVALID_MOBILE_NUMBER, "list", "8135551234", _UNPARSED),
    ("+441632960123", {}, Code.INVALID_MOBILE_NUMBER, "to", "+441632960123", _INVALID),
    ("+4479111234567", {}, Code.INVALID_MOBILE_NUMBER, "to", "+4479111234567", _INVALID),
    ("+1 900 555 1234", {}, Code.INVALID_NUMBER_TYPE, "to", "+19005551234", "number type PREMIUM_RATE is not allowed"),
    ("+44 20 7946 0958", {"field": "sms[1].to"}, Code.INVALID_NUMBER_TYPE, "sms[1].to", "+442079460958",
     "number type FIXED_LINE is not allowed"),
    ("+1 (813) 555-1234", {"allowed_countries": ("GB",), "field": "sms[2].to"}, Code.DESTINATION_NOT_ALLOWED,
     "sms[2].to", "+18135551234", "destination US is not allowed"),
    ("+18135551234", {"channel": "EMAIL"}, Code.INVALID_CHANNEL, "channel", None, "phone numbers are for SMS or VOICE"),
    ("+18135551234", {"channel": None}, Code.INVALID_CHANNEL, "channel", None, "phone numbers are for SMS or VOICE"),
)


@pytest.mark.parametrize(("raw", "kw", "code", "field", "masked", "why"), exact_refusals)
def test_every_refusal_names_its_field_and_reason(raw: object, kw: dict[str, object], code: Code, field: str,
                                                  masked: object, why: str) -> None:
    """The sender sees ``field`` and ``detail``: the detail is the masked number, then the reason."""
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw, **kw)  # type: ignore[arg-type]
    detail = why if code is Code.INVALID_CHANNEL else f"{mask_phone(masked)}: {why}"
    assert (caught.value.code, caught.value.field, caught.value.detail) == (code, field, detail)


def test_a_number_padded_to_exactly_the_length_limit_is_accepted() -> None:
    raw = "+18135551234".center(64)
    assert len(raw) == 64
    assert normalize_phone(raw) == "+18135551234"


def test_lower_case_channels_are_read() -> None:
    assert normalize_phone("+442079460958", channel="voice") == "+442079460958"


@pytest.mark.parametrize("raw", ("18135551234", "+0123456789", None))
def test_a_prefix_refusal_names_the_recipient_and_masks_it(raw: object) -> None:
    with pytest.raises(ValidationError) as caught:
        phone_prefix(raw)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.detail) == ("to", f"{mask_phone(raw)}: not E.164")
