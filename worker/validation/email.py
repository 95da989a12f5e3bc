"""Email addresses: validate with ``email-validator`` (no DNS), store one canonical form.

Decisions (docs/reliability.md B3):

* ``check_deliverability=False``: a DNS lookup can block a worker for 15 s; bounces tell us
  about dead domains instead.
* The whole normalised address is lower-cased. RFC 5321 lets a server treat the local part
  case-sensitively, but no mainstream provider does, and the address is the key for
  consent, opt-outs and duplicate checks: ``Mary@X.com`` and ``mary@x.com`` must be one person.
* Control and format characters (CR, LF, NUL, bidi overrides, zero-width joiners...) and
  line/paragraph separators are refused before the library sees the text, so no address can
  smuggle a header line into a message.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.masking import mask_email

__all__ = ["MAX_EMAIL_LENGTH", "normalize_email"]

#: The longest address we look at (64 local + '@' + 255 domain); the library enforces the tighter real limits.
MAX_EMAIL_LENGTH = 320

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _has_control(text: str) -> bool:
    """True when ``text`` holds a control, format, unassigned or line-breaking character."""
    return any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text)


def _validated(address: str, raw: object, field: str) -> str:
    """The library's normalised form of ``address``."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(Code.INVALID_EMAIL, f"{mask_email(raw)}: {exc}", field=field) from None


def normalize_email(raw: str, *, field: str = "to") -> str:
    """The normalised, lower-cased form of ``raw``, or a :class:`ValidationError` (INVALID_EMAIL).

    Surrounding spaces are forgiven; everything else the library refuses is refused. The
    lower-cased form is validated again because lower-casing can change a character
    (Turkish 'İ' becomes 'i' plus a combining dot) and the stored value must itself be valid.
    """
    if not isinstance(raw, str) or not raw.strip(" "):
        raise ValidationError(Code.INVALID_EMAIL, "an email address is required", field=field)
    if len(raw) > MAX_EMAIL_LENGTH:
        raise ValidationError(Code.INVALID_EMAIL, f"longer than {MAX_EMAIL_LENGTH} characters", field=field)
    if _has_control(raw):
        raise ValidationError(Code.INVALID_EMAIL, f"{mask_email(raw)}: control characters", field=field)
    normalized = _validated(raw.strip(" "), raw, field)
    return _validated(normalized.lower(), raw, field)
