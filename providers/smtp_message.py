"""The SMTP driver's wire shape: the email as it goes out, and the DATA payload that carries it.

Headers are never built by concatenation: values go through ``EmailMessage`` (which refuses CR/LF) and are checked
first, including encoded words that would decode to a line break (docs/reliability.md B4).
"""

from __future__ import annotations

import html
import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, default
from email.utils import formatdate

from providers.base import OutboundMessage
from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = ["build_email", "html_to_text", "message_id_header", "email_address", "dot_stuffed"]

_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LINE_START_DOT = re.compile(rb"(?m)^\.")
#: The headers :func:`build_email` writes, lower-cased and sorted; anything else in the output was injected.
_HEADERS = sorted(["content-type", "date", "from", "message-id", "mime-version", "subject", "to"])



def html_to_text(markup: str) -> str:
    """A readable plain-text part from the HTML body, for clients and spam filters that want one.

    Deliberately simple (drop scripts and styles, turn block ends into line breaks, strip tags): it is the
    fallback view, not a renderer.
    """
    text = _TAG.sub("", _BREAK.sub("\n", _DROP.sub("", markup)))
    lines = (" ".join(line.split()) for line in html.unescape(text).splitlines())
    return "\n".join(line for line in lines if line) + "\n"


def _decoded(value: str) -> str:
    """``value`` with its encoded words decoded: on this Python the email package decodes them on assignment
    and writes a decoded line break out raw, so ``=?UTF-8?Q?=0A?=Bcc:`` would add a header."""
    parts = decode_header(value)
    return "".join(part.decode(charset or "utf-8", "replace") if isinstance(part, bytes) else part
                   for part, charset in parts)


def _unsafe(value: str) -> bool:
    """True when a header value holds a control or line-break character, raw or inside an encoded word."""
    try:
        decoded = _decoded(value) if "=?" in value else ""
    except (HeaderParseError, LookupError):
        return True
    return any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in value + decoded)


def _check_serialised(email: EmailMessage) -> None:
    """Parse the produced header block back: exactly the headers we set, each once. The last line of defence
    should the value checks above ever miss a way to smuggle a line break through."""
    parsed = BytesHeaderParser(policy=default).parsebytes(email.as_bytes(), headersonly=True)
    if sorted(key.lower() for key in parsed.keys()) != _HEADERS:
        raise ValidationError(Code.INVALID_EMAIL_CONTENT, "a header value produced extra headers", field="subject")


def email_address(value: str, code: Code, field: str) -> Address:
    """An address as a header object, refused with ``code`` when it is not one plain ``local@domain``."""
    if _unsafe(value):
        raise ValidationError(code, "line break or control character in an address", field=field)
    if not value.isascii():  # would need SMTPUTF8; intake stores IDNA domains in their ASCII form
        raise ValidationError(code, "non-ASCII address", field=field)
    try:
        return Address(addr_spec=value)
    except (ValueError, HeaderParseError, IndexError) as err:
        raise ValidationError(code, f"not an email address: {err}", field=field) from err


def message_id_header(message_id: str, domain: str) -> str:
    """``<our id@sender domain>``: the id a bounce or a mailbox search finds the message by."""
    return f"<{_ID_UNSAFE.sub('', message_id)}@{domain}>"


def build_email(message: OutboundMessage, sender: Address) -> EmailMessage:
    """The message as it goes on the wire. Raises ``ValidationError`` for a header that could inject another."""
    if _unsafe(message.subject):
        raise ValidationError(Code.INVALID_EMAIL_CONTENT, "line break or control character in the subject",
                              field="subject")
    email = EmailMessage(policy=SMTP)
    email["From"] = sender
    email["To"] = email_address(message.recipient, Code.INVALID_EMAIL, "to")
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = message_id_header(message.message_id, sender.domain)
    email.set_content(html_to_text(message.body))
    email.add_alternative(message.body, subtype="html")
    _check_serialised(email)
    return email


def dot_stuffed(content: bytes) -> bytes:
    """The DATA payload: lines starting with '.' doubled, then the terminating '.' line (RFC 5321 4.5.2)."""
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return _LINE_START_DOT.sub(b"..", content) + b".\r\n"
