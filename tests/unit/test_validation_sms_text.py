"""SMS length: exact GSM-7 / UCS-2 units and segments, checked against the `gsm0338` codec."""

from __future__ import annotations

import math

import gsm0338  # noqa: F401 - registers the independent 'gsm03.38' codec used as a cross-check
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.sms_text import GSM7_BASIC, GSM7_EXTENSION, MAX_SEGMENTS, SmsEncoding, encode_info

UCS = "ï"  # not in GSM-7, one UTF-16 unit
THUMB = "\U0001f44d"  # 2 units
THUMB_TONED = "\U0001f44d\U0001f3fd"  # 4 units

cases = (
    # GSM-7 plain
    ("a", SmsEncoding("GSM7", 1, 1)),
    ("a" * 160, SmsEncoding("GSM7", 160, 1)),
    ("a" * 161, SmsEncoding("GSM7", 161, 2)),
    ("a" * 306, SmsEncoding("GSM7", 306, 2)),
    ("a" * 307, SmsEncoding("GSM7", 307, 3)),
    ("a" * 1530, SmsEncoding("GSM7", 1530, 10)),
    ("äöüßÇèé@£$¥Δ_", SmsEncoding("GSM7", 13, 1)),
    # GSM-7 extension characters cost 2 septets
    ("€", SmsEncoding("GSM7", 2, 1)),
    ("^{}\\[~]|€\f", SmsEncoding("GSM7", 20, 1)),
    ("a" * 158 + "€", SmsEncoding("GSM7", 160, 1)),
    ("a" * 159 + "€", SmsEncoding("GSM7", 161, 2)),
    ("{" * 80, SmsEncoding("GSM7", 160, 1)),
    ("{" * 81, SmsEncoding("GSM7", 162, 2)),
    # an escape pair that would straddle a segment boundary moves to the next segment
    ("a" * 152 + "€" + "a" * 151, SmsEncoding("GSM7", 305, 2)),
    ("a" * 152 + "€" + "a" * 152, SmsEncoding("GSM7", 306, 3)),
    ("a" * 151 + "€" + "a" * 153, SmsEncoding("GSM7", 306, 2)),
    # UCS-2
    (UCS, SmsEncoding("UCS2", 1, 1)),
    (UCS * 70, SmsEncoding("UCS2", 70, 1)),
    (UCS * 71, SmsEncoding("UCS2", 71, 2)),
    (UCS * 134, SmsEncoding("UCS2", 134, 2)),
    (UCS * 135, SmsEncoding("UCS2", 135, 3)),
    ("a" * 69 + UCS, SmsEncoding("UCS2", 70, 1)),
    ("€" * 69 + UCS, SmsEncoding("UCS2", 70, 1)),  # in UCS-2 the euro sign is one unit
    ("\u201chi\u201d", SmsEncoding("UCS2", 4, 1)),  # curly quotes are not GSM
    ("tab\there", SmsEncoding("UCS2", 8, 1)),
    ("αβγ", SmsEncoding("UCS2", 3, 1)),  # lower-case Greek is not GSM
    # emoji: surrogate pairs, never split
    (THUMB, SmsEncoding("UCS2", 2, 1)),
    (THUMB_TONED, SmsEncoding("UCS2", 4, 1)),
    (THUMB * 35, SmsEncoding("UCS2", 70, 1)),
    (THUMB * 36, SmsEncoding("UCS2", 72, 2)),
    (UCS * 66 + THUMB + UCS * 66, SmsEncoding("UCS2", 134, 3)),
    (UCS * 65 + THUMB + UCS * 67, SmsEncoding("UCS2", 134, 2)),
    (THUMB_TONED * 17, SmsEncoding("UCS2", 68, 1)),
    (THUMB_TONED * 18, SmsEncoding("UCS2", 72, 2)),
    ("\U0001f468\u200d\U0001f469\u200d\U0001f467", SmsEncoding("UCS2", 8, 1)),  # family: 5 code points, 8 units
)


@pytest.mark.parametrize(("body", "expected"), cases)
def test_units_and_segments_are_counted_exactly(body: str, expected: SmsEncoding) -> None:
    assert encode_info(body) == expected


flag_cases = (
    ("hello", "1", SmsEncoding("UCS2", 5, 1)),
    ("hello", "0", SmsEncoding("GSM7", 5, 1)),
    ("hello", "AUTO", SmsEncoding("GSM7", 5, 1)),
    ("€", "1", SmsEncoding("UCS2", 1, 1)),
)


@pytest.mark.parametrize(("body", "flag", "expected"), flag_cases)
def test_the_unicode_flag_forces_or_allows_an_encoding(body: str, flag: str, expected: SmsEncoding) -> None:
    assert encode_info(body, flag) == expected


_EMPTY = (Code.BODY_EMPTY, "body", "body is empty")
_NOT_TEXT = (Code.INVALID_INPUT, "body", "body must be text")
_SURROGATE = (Code.INVALID_INPUT, "body", "body holds a lone surrogate")
_NON_GSM = (Code.NON_GSM_WITH_UNICODE_OFF, "body", "body has characters outside GSM-7")
_FLAG = (Code.INVALID_UNICODE_FLAG, "unicode", "unicode must be 0, 1 or AUTO")
_TOO_MANY_CHARACTERS = (Code.SMS_TOO_LONG, "body", f"more than {MAX_SEGMENTS} segments")
_ELEVEN = (Code.SMS_TOO_LONG, "body", f"11 segments, at most {MAX_SEGMENTS}")

refusals = (
    ("", "AUTO", _EMPTY),
    ("   \n", "AUTO", _EMPTY),
    (None, "AUTO", _EMPTY),
    (42, "AUTO", _NOT_TEXT),
    (b"hello", "AUTO", _NOT_TEXT),
    ("bad \ud83d half", "AUTO", _SURROGATE),  # lone surrogate
    ("\ud800", "AUTO", _SURROGATE),  # the first surrogate
    ("\udfff", "AUTO", _SURROGATE),  # the last surrogate
    ("na\u00efve", "0", _NON_GSM),
    (THUMB, "0", _NON_GSM),
    ("hello", "2", _FLAG),
    ("hello", "auto", _FLAG),
    ("hello", 1, _FLAG),
    ("a" * 1531, "AUTO", _TOO_MANY_CHARACTERS),
    ("€" * 766, "AUTO", _ELEVEN),
    (UCS * 671, "AUTO", _ELEVEN),
    ("a" * 671, "1", _ELEVEN),
    ("a" * 100_000, "AUTO", _TOO_MANY_CHARACTERS),
)


@pytest.mark.parametrize(("body", "flag", "refusal"), refusals)
def test_bodies_that_cannot_be_sent_are_refused_with_their_code(body: object, flag: str,
                                                                refusal: tuple[Code, str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        encode_info(body, flag)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.field, caught.value.detail) == refusal


ucs2_boundaries = (
    ("\ud7ff", 1),  # last character before the surrogates
    ("\ue000", 1),  # first character after them: accepted, one unit
    ("\uffff", 1),  # last of the BMP: one UTF-16 unit
    ("\U00010000", 2),  # first outside the BMP: a surrogate pair
    ("\U0010ffff", 2),
)


@pytest.mark.parametrize(("char", "units"), ucs2_boundaries)
def test_ucs2_units_at_the_edges_of_the_bmp(char: str, units: int) -> None:
    assert encode_info(char) == SmsEncoding("UCS2", units, 1)
    assert encode_info(char * 36) == SmsEncoding("UCS2", 36 * units, 1 if units == 1 else 2)  # 70 fit in one


def test_the_longest_ucs2_body_fits_exactly_in_max_segments() -> None:
    assert encode_info(UCS * 670) == SmsEncoding("UCS2", 670, MAX_SEGMENTS)


def _gsm0338_septets(char: str) -> int | None:
    """Septets the independent `gsm0338` codec needs for ``char``, or None if it cannot encode it."""
    try:
        return len(char.encode("gsm03.38"))
    except UnicodeError:
        return None


def test_our_gsm_tables_match_the_gsm0338_codec_except_for_a_bare_escape() -> None:
    codec = {chr(cp): _gsm0338_septets(chr(cp)) for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF}
    encodable = {char for char, septets in codec.items() if septets is not None}
    assert encodable - {"\x1b"} == GSM7_BASIC | GSM7_EXTENSION
    assert all(codec[char] == 2 for char in GSM7_EXTENSION)
    assert all(codec[char] == 1 for char in GSM7_BASIC)


@settings(max_examples=300)
@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), min_size=1, max_size=400))
def test_gsm_units_equal_the_codec_length_and_segments_never_beat_the_naive_bound(body: str) -> None:
    if not body.strip():
        return
    info = encode_info(body)
    assert info.encoding == "GSM7"
    assert info.units == len(body.encode("gsm03.38"))
    naive = 1 if info.units <= 160 else math.ceil(info.units / 153)
    assert naive <= info.segments <= naive + 1 + info.units // 153


@settings(max_examples=500)
@given(
    st.one_of(st.text(max_size=800), st.none(), st.integers(), st.binary(max_size=20)),
    st.sampled_from(("AUTO", "0", "1", "x")),
)
def test_any_body_gives_an_encoding_or_a_coded_refusal(body: object, flag: str) -> None:
    try:
        info = encode_info(body, flag)  # type: ignore[arg-type]
    except ValidationError as exc:
        assert exc.code in {
            Code.BODY_EMPTY,
            Code.INVALID_INPUT,
            Code.NON_GSM_WITH_UNICODE_OFF,
            Code.INVALID_UNICODE_FLAG,
            Code.SMS_TOO_LONG,
        }
        return
    assert isinstance(body, str)
    assert 1 <= info.segments <= MAX_SEGMENTS
    if info.encoding == "UCS2":
        assert info.units == len(body.encode("utf-16-le")) // 2
