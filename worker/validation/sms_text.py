"""Exact SMS length: GSM-7 septets or UCS-2 code units, and how many segments they take.

Segments are what the provider bills and what the quota reserves, so they are counted the
way a handset splits a message, not with ``len()`` (docs/reliability.md B2):

* GSM-7 (3GPP TS 23.038): the basic table costs 1 septet per character, the extension table
  (``^ { } [ ] ~ \\ | €`` and form feed) 2, because each is sent as ESC + character.
  160 septets fit one SMS; a concatenated message carries 153 per segment.
* Any character outside both tables makes the whole body UCS-2, counted in UTF-16 code
  units: an emoji outside the BMP is a surrogate pair (2), with a skin-tone modifier 4.
  70 units fit one SMS; 67 per segment when concatenated.
* An escape pair or a surrogate pair is never split across segments, so segments are
  counted by packing whole characters greedily; a pair that does not fit starts the next.

ESC (0x1B) itself is not accepted as GSM text: in a body it is a control character, not
the start of an extension pair, so it forces UCS-2 like any other character outside the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "MAX_SEGMENTS",
    "SmsEncoding",
    "encode_info",
]

#: The GSM 03.38 default alphabet in code order (0x00-0x7F), without ESC at 0x1B.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each character is sent as ESC + one septet.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

#: The longest body accepted, in segments (seed 000 E401 "sms.max_length").
MAX_SEGMENTS = 10

Encoding = Literal["GSM7", "UCS2"]

#: (units in a single SMS, units per segment of a concatenated SMS)
_LIMITS: dict[Encoding, tuple[int, int]] = {"GSM7": (160, 153), "UCS2": (70, 67)}


@dataclass(frozen=True)
class SmsEncoding:
    """How a body goes over the air."""

    encoding: Encoding
    #: Septets for GSM7, UTF-16 code units for UCS2.
    units: int
    segments: int


def _is_gsm(body: str) -> bool:
    """True when every character is in the basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body)


def _cost(ch: str, encoding: Encoding) -> int:
    """Units one character takes: 2 for an escape pair or a surrogate pair, else 1."""
    if encoding == "GSM7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def _count(body: str, encoding: Encoding) -> SmsEncoding:
    """Total units and segments, packing whole characters greedily into segments."""
    single, per_segment = _LIMITS[encoding]
    costs = [_cost(ch, encoding) for ch in body]
    units = sum(costs)
    if units <= single:
        return SmsEncoding(encoding, units, 1)
    segments, filled = 1, 0
    for cost in costs:
        if filled + cost > per_segment:
            segments, filled = segments + 1, 0
        filled += cost
    return SmsEncoding(encoding, units, segments)


def _choose(body: str, unicode: str) -> Encoding:
    """The encoding the ``unicode`` flag asks for: '1' forces UCS2, '0' forbids it, AUTO picks."""
    if unicode == "1":
        return "UCS2"
    if _is_gsm(body):
        return "GSM7"
    if unicode == "0":
        raise ValidationError(Code.NON_GSM_WITH_UNICODE_OFF, "body has characters outside GSM-7", field="body")
    return "UCS2"


def _check_body(body: object) -> str:
    """``body`` if it is non-blank text that can be encoded at all."""
    if body is None or (isinstance(body, str) and not body.strip()):
        raise ValidationError(Code.BODY_EMPTY, "body is empty", field="body")
    if not isinstance(body, str):
        raise ValidationError(Code.INVALID_INPUT, "body must be text", field="body")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in body):
        raise ValidationError(Code.INVALID_INPUT, "body holds a lone surrogate", field="body")
    return body


def encode_info(body: str, unicode: str = "AUTO") -> SmsEncoding:
    """Encoding, units and segments of ``body``; refuses empty, unencodable or too-long bodies.

    A blank (whitespace-only) body is refused as empty: it would bill a segment and say nothing.
    """
    if unicode not in ("0", "1", "AUTO"):
        raise ValidationError(Code.INVALID_UNICODE_FLAG, "unicode must be 0, 1 or AUTO", field="unicode")
    text = _check_body(body)
    _, per_segment = _LIMITS["GSM7"]
    if len(text) > MAX_SEGMENTS * per_segment:  # every character costs at least one unit: too long already
        raise ValidationError(Code.SMS_TOO_LONG, f"more than {MAX_SEGMENTS} segments", field="body")
    info = _count(text, _choose(text, unicode))
    if info.segments > MAX_SEGMENTS:
        raise ValidationError(Code.SMS_TOO_LONG, f"{info.segments} segments, at most {MAX_SEGMENTS}", field="body")
    return info
