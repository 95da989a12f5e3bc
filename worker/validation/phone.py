"""Phone numbers: parse with ``phonenumbers``, refuse anything doubtful, store E.164.

The library's parser is lenient on purpose (docs/reliability.md B1): it maps letters to digits
(``+1 800 FLOWERS``), keeps an extension that E.164 then silently drops, cuts trailing junk,
and reads ``;1`` as an extension. A send to the wrong number cannot be undone, so before the
library sees the text we allow only digits, spaces and ``+ - . ( )``; after parsing we
require a possible *and* valid number with no extension.

Number types are an allow-list per channel, so a type the library adds later is refused
until someone decides otherwise:

* SMS: MOBILE, FIXED_LINE_OR_MOBILE (most of North America), VOIP and PERSONAL_NUMBER
  (both commonly reach a handset). FIXED_LINE and TOLL_FREE are refused: they cannot
  reliably receive texts, and toll-free texting needs a registration we do not track.
* VOICE: the SMS set plus FIXED_LINE and TOLL_FREE.
* Never: PREMIUM_RATE, SHARED_COST (they bill the caller), UAN, VOICEMAIL, PAGER, and
  UNKNOWN (a valid number always has a type, so UNKNOWN means the metadata cannot vouch for it).
"""

from __future__ import annotations

import re
from collections.abc import Collection

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.masking import mask_phone

__all__ = ["MAX_RAW_LENGTH", "normalize_phone", "phone_prefix"]

#: Longer input is refused before parsing: no real number needs more, and the parser's cost grows with length.
MAX_RAW_LENGTH = 64

#: Besides (any script's) decimal digits, the only characters a number may be written with.
_PUNCTUATION = frozenset(" \u00a0-.()+\uff0b")

_SMS_TYPES = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)
_ALLOWED_TYPES: dict[str, frozenset[int]] = {
    "SMS": _SMS_TYPES,
    "VOICE": _SMS_TYPES | {PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE},
}

_TYPE_NAMES = {value: name for name, value in vars(PhoneNumberType).items() if isinstance(value, int)}

#: What :func:`phone_prefix` accepts: E.164 is '+' and at most 15 digits, never starting with 0.
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")
_PREFIX_HIDES = 4


def _refuse(code: Code, raw: object, why: str, field: str) -> ValidationError:
    """A refusal whose detail shows only the masked number."""
    return ValidationError(code, f"{mask_phone(raw)}: {why}", field=field)


def _parse(raw: object, field: str, default_region: str | None) -> PhoneNumber:
    """Parse ``raw`` strictly; every way it can fail is INVALID_MOBILE_NUMBER."""
    if not isinstance(raw, str) or len(raw) > MAX_RAW_LENGTH or not raw.strip():
        raise _refuse(Code.INVALID_MOBILE_NUMBER, raw, "not a phone number", field)
    if any(not (ch.isdecimal() or ch in _PUNCTUATION) for ch in raw):
        raise _refuse(Code.INVALID_MOBILE_NUMBER, raw, "only digits, spaces and + - . ( ) are allowed", field)
    if "+" in raw.strip()[1:]:
        raise _refuse(Code.INVALID_MOBILE_NUMBER, raw, "'+' may only start the number", field)
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException:
        raise _refuse(Code.INVALID_MOBILE_NUMBER, raw, "cannot be parsed (a leading '+' is needed)", field) from None
    if number.extension:
        raise _refuse(Code.INVALID_MOBILE_NUMBER, raw, "extensions are not allowed", field)
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise _refuse(Code.INVALID_MOBILE_NUMBER, raw, "not a valid number", field)
    return number


def _check_type(number: PhoneNumber, channel: str, field: str) -> None:
    """Refuse number types the channel cannot reach or that bill the caller."""
    allowed = _ALLOWED_TYPES.get(channel.upper() if isinstance(channel, str) else "")
    if allowed is None:
        raise ValidationError(Code.INVALID_CHANNEL, "phone numbers are for SMS or VOICE", field="channel")
    kind = phonenumbers.number_type(number)
    if kind not in allowed:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        raise _refuse(Code.INVALID_NUMBER_TYPE, e164, f"number type {_type_name(kind)} is not allowed", field)


def _type_name(kind: int) -> str:
    """The library's name for a number type, e.g. 'PREMIUM_RATE'."""
    return _TYPE_NAMES.get(kind, str(kind))


def _check_country(number: PhoneNumber, allowed_countries: Collection[str], field: str) -> None:
    """Refuse a destination outside the merchant's allowed regions (ISO 3166 codes; empty = all).

    The region is the library's: Guernsey (GG), Jersey (JE) and the Isle of Man (IM) share +44
    with GB but are their own regions, and non-geographic numbers (+800, +882...) are '001'.
    """
    if not allowed_countries:
        return
    region = phonenumbers.region_code_for_number(number) or ""
    if region.upper() not in {str(country).upper() for country in allowed_countries}:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        raise _refuse(Code.DESTINATION_NOT_ALLOWED, e164, f"destination {region or 'unknown'} is not allowed", field)


def normalize_phone(
    raw: str,
    *,
    channel: str = "SMS",
    field: str = "to",
    allowed_countries: Collection[str] = (),
    default_region: str | None = None,
) -> str:
    """The E.164 form of ``raw``, or a :class:`ValidationError` with the reason's code.

    Without ``default_region`` the number must be written internationally (leading '+'),
    because guessing a region from a merchant's locale sends to the wrong country.
    """
    number = _parse(raw, field, default_region)
    _check_type(number, channel, field)
    _check_country(number, allowed_countries, field)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def phone_prefix(e164: str) -> str:
    """The number without its last four digits ('+18135551234' -> '+1813555').

    Velocity checks count sends per prefix to spot runs through a block of numbers.
    """
    if not isinstance(e164, str) or not _E164.fullmatch(e164):
        raise ValidationError(Code.INVALID_MOBILE_NUMBER, f"{mask_phone(e164)}: not E.164", field="to")
    return e164[:-_PREFIX_HIDES]
