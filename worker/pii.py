"""Scrubbing personal data out of anything that leaves the process: logs, Sentry events, Flower.

Everything here is a pure function, so it can run inside a ``logging.Filter``, a Sentry
``before_send`` hook or a Celery ``argsrepr`` without side effects.

* :func:`mask_phone` / :func:`mask_email` keep just enough for a human to recognise a value
  (``'+1******1234'``, ``'m***@example.com'``); they are the masks of
  :mod:`worker.validation.masking`, so a number looks the same in a refusal and in a log line.
* :func:`scrub_text` masks, inside free text, email addresses, anything that looks like a phone
  number and every 4-8 digit run (OTP-like codes).
* :func:`scrub` walks dicts, lists, tuples and strings: values under a sensitive key
  (``to``, ``body``, ``otp``, ``api_key`` ...) become ``'[Filtered]'``, other strings go through
  :func:`scrub_text`.

**Over-masking is on purpose.** An OTP is just a short number, so *every* run of 4 to 8 digits
is masked whole (``'took 2048 ms'`` -> ``'took **** ms'``), and every longer run, or 7 or more
digits with separators or a leading ``+``, is masked like a phone number (last four kept).
Losing a harmless number in a log line is cheap; leaking a code or a recipient is not. A few
shapes that are never personal data are left alone so that logs and Sentry stay usable: UUIDs
(task ids), ISO dates and times, IPv4 addresses, decimals (``0.25``, ``3.11``) and long hex
tokens (trace ids, hashes), and the numbers of a log line's plumbing: a port after a host or IPv4 address
(``127.0.0.1:6379``, ``db.internal:5432``, ``[::1]:8080``) and the number after ``line``, ``pid`` or ``port``.

**Bounded cost.** A text longer than :data:`MAX_SCRUB_CHARS` is cut (back to a word boundary) *before* it is
scrubbed, and every pattern that can run long only starts where its run starts, so the cost is linear in the
length: a provider answer or log line is attacker-influenced text.

:func:`scrub_text` is idempotent: masked output contains no digit run that it would mask again
(a run right after a ``*`` is already a kept tail), so scrubbing twice (a log filter and then
Sentry) keeps the ``1234`` tail that support staff ask for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from worker.validation import masking

__all__ = [
    "FILTERED",
    "SENSITIVE_KEYS",
    "is_sensitive_key",
    "mask_email",
    "mask_phone",
    "scrub",
    "scrub_text",
    "storable_raw",
]

#: What a value under a sensitive key is replaced with (the marker Sentry itself uses).
FILTERED: Final = "[Filtered]"

#: Keys whose values are replaced whole, compared after :func:`_fold` (lower case, '-' and '_' removed).
SENSITIVE_KEYS: Final[frozenset[str]] = frozenset(
    {
        # recipients and their contact data
        "to", "recipient", "recipients", "contact", "contacts", "phone", "phones", "phonenumber",
        "mobile", "mobiles", "msisdn", "number", "numbers", "tonumber", "email", "emails",
        "emailaddress", "address", "addresses", "cc", "bcc", "replyto",
        "firstname", "lastname", "fullname", "displayname", "recipientname",
        # message content
        "body", "text", "message", "messages", "subject", "html", "content", "template", "variables",
        "otp", "code", "pin", "passcode",
        # credentials
        "secret", "secrets", "clientsecret", "webhooksecret", "signingsecret", "apikey", "apisecret",
        "xapikey", "xapisecret", "password", "passwd", "pwd", "authorization", "proxyauthorization",
        "auth", "token", "accesstoken", "refreshtoken", "idtoken", "cookie", "cookies", "setcookie",
        "session", "sessionid", "csrftoken", "xcsrftoken", "privatekey", "credentials", "dsn",
        "signature", "webhooksignature",
    }
)

#: Deeper than this a structure is cut off (guards against cycles and pathological nesting).
_MAX_DEPTH: Final = 32

#: Longest OTP-like digit run, masked whole (longer bare runs are masked like phone numbers, tail kept).
_OTP_MAX: Final = 8

_SEP = r"[ .()\-]"  # separators allowed between the digits of a phone number (at most 2 in a row)

#: Characters of one text scrubbed at most; the rest is cut off *before* scrubbing, so a 240 KB provider answer
#: costs what 32 KB does. Logs and Sentry gain nothing from more, and the history keeps far less (RAW_MAX_CHARS).
MAX_SCRUB_CHARS: Final = 32_768
#: What replaces the cut-off tail of an over-long text.
TRUNCATED: Final = "...[truncated]"

_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"  # characters of an email address's local part

# Every alternative that can run long starts with a negative lookbehind, so it is tried only where its run starts,
# never again from the middle of the same run: each character is examined a bounded number of times (linear time).
_TEXT_RE: Final = re.compile(
    r"""
    (?P<email>(?<!""" + _LOCAL + r""")""" + _LOCAL + r"""+@[\w-]+(?:\.[\w-]+)+)
    | (?P<keep>
          [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}   # UUID
        | (?<![\d*])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?(?!\d)  # ISO date[time]
        | (?<![\d*.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5}(?!\d)|(?![\d.]))               # IPv4[:port]
        | (?:(?<![\w.-])(?:localhost|[A-Za-z][\w-]*(?:\.[\w-]+)+)|\]):\d{1,5}(?!\d)   # host:port, [v6]:port
        | (?<![\w.-])(?i:line|pid|port)[ =:]{1,2}\d{1,10}(?!\d)                       # line 1234, pid 4242
        | (?<![0-9a-zA-Z*])(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,}(?![0-9a-zA-Z])            # hex token
        | (?<![\d*.+])\d{1,2}\.\d+(?![\d.])                                            # duration, 0.0123
      )
    | (?P<phone>(?<![\d*])\+?\(?\d(?:""" + _SEP + r"""{0,2}\d){6,}(?!\d))
    | (?P<decimal>(?<![\d*.])\d+\.\d+(?![\d.]))
    | (?P<otp>(?<![\d*])\d{4,8}(?!\d))
    """,
    re.VERBOSE,
)


def mask_phone(e164: str) -> str:
    """``'+18135551234'`` -> ``'+1******1234'``: the ``+``, country code and last four digits survive."""
    return masking.mask_phone(e164)


def mask_email(addr: str) -> str:
    """``'member@example.com'`` -> ``'m***@example.com'``: the first character and the domain survive."""
    return masking.mask_email(addr)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    value = match.group()
    if kind == "email":
        return mask_email(value)
    if kind == "phone" and not (value.isdigit() and len(value) <= _OTP_MAX):
        return mask_phone(value)
    if kind in {"phone", "otp"}:  # a bare run of 7-8 digits is as likely an OTP as a local number: hide it all
        return "*" * len(value)
    return value  # keep / decimal


def scrub_text(text: str) -> str:
    """``text`` with email addresses, phone-like numbers and 4-8 digit runs masked (see the module notes)."""
    if len(text) > MAX_SCRUB_CHARS:
        text = _truncate(text)
    if not text or not _may_hold_pii(text):
        return text
    return _TEXT_RE.sub(_replace, text)


_ASCII_DIGIT_OR_AT = re.compile(r"[0-9@]")


def _may_hold_pii(text: str) -> bool:
    """True when ``text`` has a digit or an '@'. ASCII text (nearly all of it: keys, ids) is searched by one regex;
    the per-character loop was a tenth of recording a batch of provider answers."""
    if text.isascii():
        return _ASCII_DIGIT_OR_AT.search(text) is not None
    return any(ch.isdigit() or ch == "@" for ch in text)


def _truncate(text: str) -> str:
    """The head of an over-long text, cut back to a word boundary: a number or address cut in half would no longer
    look like one to the patterns above and slip through unmasked."""
    head = text[:MAX_SCRUB_CHARS]
    cut = max(head.rfind(ch) for ch in " \n\t,;")
    return (head[:cut + 1] if cut > 0 else "") + TRUNCATED


def _fold(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def is_sensitive_key(key: object) -> bool:
    """True for a key whose value is never shown: ``'To'``, ``'api_key'``, ``'apiSecret'``, ``'X-Api-Secret'``."""
    return isinstance(key, str) and _fold(key) in SENSITIVE_KEYS


def scrub(obj: Any, *, keep: Collection[str] = ()) -> Any:
    """A copy of ``obj`` with sensitive keys filtered and every other string scrubbed.

    Mappings come back as ``dict`` (string keys are scrubbed too: a phone number used as a key
    is masked), lists as lists, tuples as tuples, sets as sets, bytes as scrubbed ``str``.
    Anything else (numbers, ``None``, objects) is returned as it is; callers that ``repr``
    an object should scrub the repr instead. A sensitive key holding ``None`` keeps ``None``.

    ``keep`` names keys (exact spelling) whose values are structural and copied untouched at any
    depth, such as a Sentry event's ``event_id`` or ``timestamp``.
    """
    return _scrub(obj, frozenset(keep), 0)


def _scrub(obj: Any, keep: frozenset[str], depth: int) -> Any:
    if isinstance(obj, str):
        return scrub_text(obj)
    if depth >= _MAX_DEPTH:
        return "[...]"
    if isinstance(obj, Mapping):
        return {_scrub_key(key): _scrub_value(key, value, keep, depth) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_scrub(item, keep, depth + 1) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_scrub(item, keep, depth + 1) for item in obj)
    if isinstance(obj, set | frozenset):
        return {_scrub(item, keep, depth + 1) for item in obj}
    if isinstance(obj, bytes | bytearray):
        return scrub_text(bytes(obj).decode("utf-8", errors="replace"))
    return obj


def _scrub_key(key: Any) -> Any:
    return scrub_text(key) if isinstance(key, str) else key


def _scrub_value(key: Any, value: Any, keep: frozenset[str], depth: int) -> Any:
    if key in keep:
        return value
    if is_sensitive_key(key):
        return None if value is None else FILTERED
    return _scrub(value, keep, depth + 1)


#: Keys of a provider answer whose values are identifiers, copied as they are into the message history.
RAW_ID_KEYS: Final = frozenset({"provider_ref", "providerRef", "message_id", "messageId", "request_id", "requestId",
                                "id", "callId", "clientRef", "ref", "provider_code", "status", "outcome", "attempt"})
#: The most of one provider answer the history keeps, in characters of JSON.
RAW_MAX_CHARS: Final = 4000


def storable_raw(raw: Any) -> Any:
    """A provider's raw answer as the message history keeps it: scrubbed of personal data, JSON, bounded.

    The raw payload is evidence (what the provider really said, for support and disputes), but it echoes the
    recipient and the text, so it gets the same scrubbing as logs; identifiers are kept so it stays useful.
    """
    if raw is None:
        return None
    text = json.dumps(scrub(raw, keep=RAW_ID_KEYS), default=str, ensure_ascii=False)
    return json.loads(text) if len(text) <= RAW_MAX_CHARS else {"truncated": text[:RAW_MAX_CHARS]}
