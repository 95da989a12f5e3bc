"""Small request fields: sender id, references, flags, message type, channel, voice and email content.

Every check takes ``object`` because it runs on decoded JSON, and is strict about types:
JSON ``true`` is not the number 1, and ``12`` is not the text "12", except where noted.
Text patterns are ASCII on purpose: ``str.isalnum`` would let Arabic-Indic digits or
full-width letters into a sender id that no operator network can carry.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TypeGuard

from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = [
    "EmailContent",
    "VoiceRequest",
    "check_campaign_id",
    "check_campaign_name",
    "check_channel",
    "check_duplicate_flag",
    "check_email_content",
    "check_flash_flag",
    "check_port",
    "check_ref",
    "check_ref1",
    "check_ref2",
    "check_sender",
    "check_sms_type",
    "check_unicode_flag",
    "check_voice",
]

#: Alphanumeric sender ids are 3-11 characters with at least one letter; numeric ones 3-15 digits.
_ALPHA_SENDER = re.compile(r"(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{3,11}")
_NUMERIC_SENDER = re.compile(r"\+?[0-9]{3,15}")
_REF = re.compile(r"[A-Za-z0-9]{1,40}")
#: A campaign id names a campaign of the merchant's own: letters, digits, '.', '_' and '-'.
_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Seed 000 E603: a port "must contain only numbers"; it is an application port (1-65535).
_PORT = re.compile(r"[0-9]{1,5}")
PORT_RANGE = range(1, 65536)
#: Seed 000 E607: "only alpha numerics", so no spaces.
_CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9]{1,32}")
#: An RFC 2047 encoded word ('=?UTF-8?Q?...'): refused in a subject so no encoded newline reaches a header.
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[BbQq]\?")

SMS_TYPES = ("TXN", "MKT", "OTP")
CHANNELS = ("SMS", "VOICE", "EMAIL")
VOICE_TEXT_MAX = 3000
VOICE_TIMEOUT_RANGE = range(5, 121)
SUBJECT_MAX = 998  # RFC 5322 line limit
EMAIL_BODY_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class VoiceRequest:
    """A checked voice call: what to say, how long to ring, whether to record."""

    text: str
    timeout_seconds: int
    record: bool


@dataclass(frozen=True)
class EmailContent:
    """A checked email subject and body."""

    subject: str
    body: str


def _is_int(value: object) -> TypeGuard[int]:
    """True for a real int; bool is an int subclass but never means a number here."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_blank(value: object) -> bool:
    """True for None and for text that is empty or only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def check_sender(sender: object) -> str:
    """The sender id, unchanged: 3-11 letters/digits with a letter, or 3-15 digits with an optional '+'."""
    if sender is None or sender == "":
        raise ValidationError(Code.SENDER_REQUIRED, "sender is required", field="sender")
    if not isinstance(sender, str) or not (_ALPHA_SENDER.fullmatch(sender) or _NUMERIC_SENDER.fullmatch(sender)):
        raise ValidationError(Code.INVALID_SENDER_PATTERN, "3-11 letters/digits or 3-15 digits", field="sender")
    return sender


def _optional_text(value: object, pattern: re.Pattern[str], code: Code, field: str) -> str | None:
    """``value`` if it matches ``pattern``; None when absent or empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(code, f"{field} must be alphanumeric ({pattern.pattern})", field=field)
    return value


def check_ref(ref: object) -> str | None:
    """The message reference (1-40 ASCII letters/digits), or None when absent."""
    return _optional_text(ref, _REF, Code.INVALID_REF, "ref")


def check_ref1(ref: object) -> str | None:
    """The merchant's second reference tag (seed 000 E609), like ``ref``."""
    return _optional_text(ref, _REF, Code.INVALID_REF1, "ref1")


def check_ref2(ref: object) -> str | None:
    """The merchant's third reference tag (seed 000 E610), like ``ref``."""
    return _optional_text(ref, _REF, Code.INVALID_REF2, "ref2")


def check_port(value: object) -> int | None:
    """The destination application port (seed 000 E603: only numbers), 1-65535, as an int or digits; None when
    absent. JSON ``true`` and "80a" are not numbers, and neither is a port past 65535."""
    if value is None or value == "":
        return None
    text = str(value) if _is_int(value) else value
    if not isinstance(text, str) or not _PORT.fullmatch(text) or int(text) not in PORT_RANGE:
        raise ValidationError(Code.INVALID_PORT, "port must contain only numbers (1-65535)", field="port")
    return int(text)


def check_duplicate_flag(value: object) -> bool:
    """Seed 000's ``duplicate`` (E605: only 1 or 0): True asks to send a repeat inside the duplicate window."""
    return _zero_one(value, Code.INVALID_DUPLICATE_FLAG, "duplicate")


def check_campaign_id(value: object) -> str | None:
    """The merchant's campaign id: absent is fine, present but blank is E617, a malformed one E413."""
    if value is None:
        return None
    if _is_blank(value):
        raise ValidationError(Code.CAMPAIGN_ID_REQUIRED, "campaignId has to be filled", field="campaignId")
    if not isinstance(value, str) or not _CAMPAIGN_ID.fullmatch(value):
        raise ValidationError(Code.INVALID_INPUT, "campaignId must be 1-64 letters, digits, '.', '_' or '-'",
                              field="campaignId")
    return value


def check_campaign_name(name: object) -> str | None:
    """The campaign name (1-32 ASCII letters/digits, no spaces per seed 000), or None when absent."""
    return _optional_text(name, _CAMPAIGN_NAME, Code.INVALID_CAMPAIGN_NAME, "campaignName")


def check_unicode_flag(value: object) -> str:
    """'0', '1' or 'AUTO' (any case); the ints 0 and 1 are accepted too; absent means AUTO."""
    if value is None:
        return "AUTO"
    if _is_int(value) and value in (0, 1):
        return str(value)
    if isinstance(value, str) and value.upper() in ("0", "1", "AUTO"):
        return value.upper()
    raise ValidationError(Code.INVALID_UNICODE_FLAG, "unicode must be 0, 1 or AUTO", field="unicode")


def check_flash_flag(value: object) -> bool:
    """True for 1 / '1' / true, False for 0 / '0' / false or absent. A flag, so JSON booleans are fine."""
    return _zero_one(value, Code.INVALID_FLASH_FLAG, "flash")


def _zero_one(value: object, code: Code, field: str) -> bool:
    """A seed-000 0/1 flag: 1, '1' or true; 0, '0', false or absent. Anything else is ``code``."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1") and (_is_int(value) or isinstance(value, str)):
        return value in (1, "1")
    raise ValidationError(code, f"{field} must be 0 or 1", field=field)


def check_sms_type(value: object) -> str:
    """TXN, MKT or OTP (any case), upper-cased."""
    if _is_blank(value):
        raise ValidationError(Code.TYPE_REQUIRED, "type is required", field="type")
    if not isinstance(value, str) or value.upper() not in SMS_TYPES:
        raise ValidationError(Code.INVALID_TYPE, "type must be TXN, MKT or OTP", field="type")
    return value.upper()


def check_channel(value: object) -> str:
    """SMS, VOICE or EMAIL (any case), upper-cased."""
    if not isinstance(value, str) or value.upper() not in CHANNELS:
        raise ValidationError(Code.INVALID_CHANNEL, "channel must be SMS, VOICE or EMAIL", field="channel")
    return value.upper()


def check_voice(text: object, timeout_seconds: object = 30, record: object = False) -> VoiceRequest:
    """Text to speak (1-3000 characters, not blank), ring timeout (int 5-120 s) and record (bool)."""
    if _is_blank(text) or not isinstance(text, str) or len(text) > VOICE_TEXT_MAX:
        raise ValidationError(Code.INVALID_VOICE_REQUEST, f"text must be 1-{VOICE_TEXT_MAX} characters", field="text")
    if not _is_int(timeout_seconds) or timeout_seconds not in VOICE_TIMEOUT_RANGE:
        raise ValidationError(Code.INVALID_VOICE_REQUEST, "timeoutSeconds must be 5-120", field="timeoutSeconds")
    if not isinstance(record, bool):
        raise ValidationError(Code.INVALID_VOICE_REQUEST, "record must be true or false", field="record")
    return VoiceRequest(text, timeout_seconds, record)


def _has_control(text: str) -> bool:
    """True when ``text`` holds a control/format character or a line/paragraph separator."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in text)


def _content_error(detail: str, field: str) -> ValidationError:
    """An INVALID_EMAIL_CONTENT refusal of ``field``."""
    return ValidationError(Code.INVALID_EMAIL_CONTENT, detail, field=field)


def check_email_content(subject: object, body: object) -> EmailContent:
    """A subject that is safe as a header and a body of at most 512 KB (UTF-8)."""
    if _is_blank(subject) or not isinstance(subject, str) or len(subject) > SUBJECT_MAX:
        raise _content_error(f"subject must be 1-{SUBJECT_MAX} characters", "subject")
    if _has_control(subject) or _ENCODED_WORD.search(subject):
        raise _content_error("subject holds a line break, control character or encoded word", "subject")
    if _is_blank(body) or not isinstance(body, str):
        raise _content_error("body is required", "body")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise _content_error("body holds a lone surrogate", "body") from None
    if size > EMAIL_BODY_MAX_BYTES:
        raise _content_error(f"body is over {EMAIL_BODY_MAX_BYTES} bytes", "body")
    return EmailContent(subject, body)
