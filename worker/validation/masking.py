"""Masks for personal data that must never appear whole in logs, exceptions or reports.

A refusal's detail is stored and returned to the sender and copied into logs, so it may only
carry enough of a phone number or email address to let a human recognise it: the country
code and last four digits of a number, the first character and the domain of an address.
Both helpers accept any object, because they are used on raw, unvalidated input.
"""

from __future__ import annotations

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

__all__ = ["mask_contact", "mask_phone", "mask_email"]

#: Digits kept at the end of a masked phone number (the same four that support staff ask for).
_KEEP_LAST = 4
#: At least this many digits are hidden; a shorter value is masked whole.
_MIN_HIDDEN = 3
#: At most this many '*' stand for hidden digits, so a masked value stays short whatever came in.
_MAX_HIDDEN = 16
#: A masked email address is cut to this length.
_MAX_MASKED = 40


def _country_code(digits: str) -> str:
    """The leading country calling code of ``digits`` (1-3 digits), or '' when none is known."""
    for size in (1, 2, 3):
        if digits[:size].isdigit() and int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size]
    return ""


def mask_phone(value: object) -> str:
    """``'+18135551234'`` -> ``'+1******1234'``: the country code and the last four digits survive.

    The country code is dropped when keeping it would hide fewer than three digits; anything
    that is not a string, or has fewer than seven digits, becomes ``'***'``.
    """
    if not isinstance(value, str):
        return "***"
    digits = "".join(ch for ch in value if ch.isascii() and ch.isdigit())
    if len(digits) < _MIN_HIDDEN + _KEEP_LAST:
        return "***"
    plus = value.strip().startswith("+")
    head = _country_code(digits) if plus else ""
    if len(digits) - len(head) - _KEEP_LAST < _MIN_HIDDEN:
        head = ""
    hidden = min(len(digits) - len(head) - _KEEP_LAST, _MAX_HIDDEN)
    return ("+" if plus else "") + head + "*" * hidden + digits[-_KEEP_LAST:]


def _printable(text: str) -> str:
    """``text`` with anything that could break a log line replaced by '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def mask_email(value: object) -> str:
    """``'mary@example.com'`` -> ``'m***@example.com'``: the first character and the domain survive."""
    if not isinstance(value, str) or "@" not in value:
        return "***"
    local, _, domain = value.rpartition("@")
    first = local[:1] if local[:1].isprintable() else "?"
    return _printable(f"{first}***@{domain}")[:_MAX_MASKED]


def mask_contact(value: object) -> str:
    """An email address or a phone number masked by its kind: the form answers carry (see :mod:`worker.pii`).

    Answers are kept in the result backend and shown by Flower, so they name a recipient only as much as a
    human needs to recognise it; the caller already holds the full value it sent.
    """
    return mask_email(value) if isinstance(value, str) and "@" in value else mask_phone(value)
