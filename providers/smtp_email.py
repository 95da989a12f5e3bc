"""SMTP email driver: one message per SMTP transaction, with an HTML part and a plain-text part derived from it.

The transaction is driven command by command (MAIL, RCPT, DATA, content) rather than with ``sendmail`` so the
driver knows how far it got when something fails: until the content has started to go out nothing can be
delivered, so a failure is UNAVAILABLE; once it has, a timeout or a dropped connection is AMBIGUOUS (the server may
have queued it before the reply was lost). Explicit replies follow RFC 5321's classes: 4yz is transient
(UNAVAILABLE), 5yz permanent (REJECTED), mapped to catalogue codes through :data:`SMTP_REPLY_CODES`.

Headers are never built by concatenation: values go through ``EmailMessage`` (which refuses CR/LF) and are checked
first, including encoded words that would decode to a line break (docs/reliability.md B4).
"""

from __future__ import annotations

import html
import json
import logging
import re
import smtplib
import socket
import ssl
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, default
from email.utils import formatdate
from typing import Any, Self

from providers.base import (
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.http_common import OptionReader, parse_timestamp, verify_signature
from schema.states import Channel
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import Settings

__all__ = ["SmtpEmailProvider", "SMTP_REPLY_CODES", "EMAIL_EVENTS", "build_email", "html_to_text"]

log = logging.getLogger(__name__)

_R, _U = SendOutcome.REJECTED, SendOutcome.UNAVAILABLE
#: Reply codes with a meaning more precise than their class. Any other 4yz is UNAVAILABLE and any other 5yz is
#: REJECTED (PROVIDER_REJECTED); a reply outside both classes is AMBIGUOUS once the content has gone out.
SMTP_REPLY_CODES: Mapping[int, tuple[SendOutcome, Code | None]] = {
    421: (_U, None),  # service closing the channel
    450: (_U, None),  # mailbox busy or greylisted
    451: (_U, None),
    452: (_U, None),  # insufficient storage
    550: (_R, Code.INVALID_EMAIL),  # mailbox unavailable
    551: (_R, Code.INVALID_EMAIL),  # user not local
    553: (_R, Code.INVALID_EMAIL),  # mailbox name not allowed
    552: (_R, Code.PROVIDER_REJECTED),  # exceeded storage allocation
    554: (_R, Code.PROVIDER_REJECTED),  # transaction failed (often content policy)
}
#: Events of the bounce/delivery webhook many relays offer (``{"event": ..., "messageId": ...}``).
EMAIL_EVENTS: Mapping[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    **dict.fromkeys(("bounce", "bounced", "hard_bounce", "failed", "rejected", "dropped"), DeliveryStatus.FAILED),
    **dict.fromkeys(("queued", "processed", "accepted", "deferred", "soft_bounce"), DeliveryStatus.ACCEPTED),
}

_OPTIONS = frozenset({"host", "port", "username", "password", "starttls", "ssl", "from_address", "timeout",
                      "max_rps", "ca_file", "local_hostname", "webhook_secret"})
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LINE_START_DOT = re.compile(rb"(?m)^\.")
#: The headers :func:`build_email` writes, lower-cased and sorted; anything else in the output was injected.
_HEADERS = sorted(["content-type", "date", "from", "message-id", "mime-version", "subject", "to"])


@dataclass(frozen=True)
class _Server:
    host: str
    port: int
    use_ssl: bool
    starttls: bool
    timeout: float
    local_hostname: str
    ca_file: str | None
    username: str | None
    password: str | None


@dataclass
class _Progress:
    """How far one transaction got; decides whether a failure may have delivered the message."""

    content_started: bool = False


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


def _address(value: str, code: Code, field: str) -> Address:
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
    email["To"] = _address(message.recipient, Code.INVALID_EMAIL, "to")
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = message_id_header(message.message_id, sender.domain)
    email.set_content(html_to_text(message.body))
    email.add_alternative(message.body, subtype="html")
    _check_serialised(email)
    return email


def _dot_stuffed(content: bytes) -> bytes:
    """The DATA payload: lines starting with '.' doubled, then the terminating '.' line (RFC 5321 4.5.2)."""
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return _LINE_START_DOT.sub(b"..", content) + b".\r\n"


def _reply_result(provider: str, phase: str, code: int, reply: bytes, progress: _Progress) -> SendResult:
    """A refusal reply as an outcome; a reply outside 4yz/5yz is AMBIGUOUS only once the content went out."""
    raw = {"phase": phase, "smtp_code": code, "smtp_reply": reply.decode("utf-8", "replace")}
    detail = f"{phase} answered {code} {raw['smtp_reply']}"
    if phase == "MAIL":  # our sender or account, not this message: another provider may take it
        outcome, catalogue = SendOutcome.UNAVAILABLE, None
    elif code in SMTP_REPLY_CODES:
        outcome, catalogue = SMTP_REPLY_CODES[code]
    elif 400 <= code < 500:
        outcome, catalogue = SendOutcome.UNAVAILABLE, None
    elif 500 <= code < 600:
        outcome, catalogue = SendOutcome.REJECTED, Code.PROVIDER_REJECTED
    else:
        outcome = SendOutcome.AMBIGUOUS if progress.content_started else SendOutcome.UNAVAILABLE
        catalogue = None
    if outcome is not SendOutcome.REJECTED:
        catalogue = None
    return SendResult(outcome, provider, provider_code=str(code), error_code=catalogue, detail=detail, raw=raw)


def _quit(smtp: smtplib.SMTP) -> None:
    """End the session; a failure here changes nothing about the message, whose outcome is already known."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


class SmtpEmailProvider:
    """One SMTP relay. Options: ``host``, ``port`` (default 587, 465 with ssl), ``username``, ``password``
    (secret), ``starttls`` (default true; never downgrades when the server lacks it), ``ssl`` (implicit TLS),
    ``from_address``, ``timeout`` (seconds per socket operation, default HEXAVOX_PROVIDER_TIMEOUT), ``max_rps``,
    ``ca_file`` (trust a private CA), ``local_hostname`` (EHLO name), ``webhook_secret`` (secret)."""

    channels = frozenset({Channel.EMAIL})

    def __init__(self, name: str, server: _Server, sender: Address, *, max_rps: float,
                 webhook_secret: str | None) -> None:
        self.name = name
        self.max_rps = max_rps
        self._server = server
        self._sender = sender
        self._webhook_secret = webhook_secret

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], settings: Settings) -> Self:
        read = OptionReader("smtp_email", name, options, _OPTIONS)
        use_ssl = read.flag("ssl", False)
        server = _Server(
            host=read.text("host"), port=int(read.number("port", 465 if use_ssl else 587)), use_ssl=use_ssl,
            starttls=read.flag("starttls", True) and not use_ssl,
            timeout=read.number("timeout", settings.provider_timeout),
            local_hostname=read.text("local_hostname", socket.gethostname()),
            ca_file=read.text("ca_file", "") or None,
            username=read.text("username", "") or None, password=read.text("password", "") or None,
        )
        if server.username and not (server.use_ssl or server.starttls):
            raise ConfigurationError(f"provider {name!r}: refusing to send SMTP credentials without TLS")
        try:
            sender = _address(read.text("from_address"), Code.INVALID_EMAIL, "from_address")
        except ValidationError as err:
            raise ConfigurationError(f"provider {name!r}: from_address: {err.detail}") from err
        return cls(name, server, sender, max_rps=read.number("max_rps", 0.0),
                   webhook_secret=read.text("webhook_secret", "") or None)

    def __repr__(self) -> str:
        s = self._server
        return f"SmtpEmailProvider(name={self.name!r}, host={s.host!r}, port={s.port}, user={s.username!r})"

    def send(self, message: OutboundMessage) -> SendResult:
        """One SMTP transaction; never raises for server or network trouble."""
        try:
            email = build_email(message, self._sender)
        except ValidationError as err:
            return SendResult.rejected(self.name, None, err.detail, error_code=err.code, raw={"field": err.field})
        progress = _Progress()
        try:
            result = self._deliver(email, message.recipient, progress)
        except (OSError, smtplib.SMTPException) as err:
            result = self._failed(err, progress)
        log.info("email send via %s: %s %s", self.name, result.outcome, result.provider_code or result.detail)
        return result

    def _failed(self, err: Exception, progress: _Progress) -> SendResult:
        raw = {"error": type(err).__name__, "detail": str(err)[:500], "content_started": progress.content_started}
        if progress.content_started:
            return SendResult.ambiguous(self.name, f"connection lost after the content was sent: {err}", raw=raw)
        return SendResult.unavailable(self.name, f"nothing sent: {type(err).__name__}: {err}", raw=raw)

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._server.ca_file)

    def _open(self) -> smtplib.SMTP:
        """Connect, greet, upgrade to TLS and log in; any failure here means nothing was sent."""
        s = self._server
        if s.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, local_hostname=s.local_hostname,
                                                  timeout=s.timeout, context=self._tls())
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=self._tls())  # raises when not offered: never fall back to plain text
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _deliver(self, email: EmailMessage, recipient: str, progress: _Progress) -> SendResult:
        smtp = self._open()
        try:
            return self._transaction(smtp, email, recipient, progress)
        finally:
            _quit(smtp)

    def _transaction(self, smtp: smtplib.SMTP, email: EmailMessage, recipient: str, progress: _Progress
                     ) -> SendResult:
        code, reply = smtp.mail(self._sender.addr_spec)
        if code != 250:
            return _reply_result(self.name, "MAIL", code, reply, progress)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            return _reply_result(self.name, "RCPT", code, reply, progress)
        code, reply = smtp.docmd("DATA")
        if code != 354:
            return _reply_result(self.name, "DATA", code, reply, progress)
        progress.content_started = True
        smtp.send(_dot_stuffed(email.as_bytes()))
        code, reply = smtp.getreply()
        if code != 250:
            return _reply_result(self.name, "CONTENT", code, reply, progress)
        raw = {"phase": "CONTENT", "smtp_code": code, "smtp_reply": reply.decode("utf-8", "replace")}
        # The relay took responsibility for the message (RFC 5321 section 6.1) and SMTP has no lookup: final.
        return SendResult.accepted(self.name, str(email["Message-ID"]), raw=raw, provider_code=str(code), final=True)

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        """SMTP has no lookup: a relay's 250 is all it ever says, and it settles the message at send time. Always
        UNKNOWN here, so an AMBIGUOUS email (the answer to DATA was lost) settles through the webhook or, failing
        that, expires unbilled: nothing proves the relay took it."""
        return StatusResult(DeliveryStatus.UNKNOWN, provider_ref=ref.provider_ref,
                            raw={"reason": "SMTP offers no status lookup"})

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """Events from a JSON bounce/delivery webhook (one event or a list); a body that is not such JSON
        gives no events, since many relays post other notices to the same URL."""
        verify_signature(headers, body, self._webhook_secret)
        try:
            payload = json.loads(body)
        except ValueError:
            return []
        entries = payload if isinstance(payload, list) else [payload]
        return [self._event(entry) for entry in entries if isinstance(entry, dict) and entry.get("messageId")]

    def _event(self, entry: dict[str, Any]) -> DeliveryEvent:
        header_id = str(entry["messageId"])
        kind = str(entry.get("event", "")).strip().lower()
        return DeliveryEvent(
            provider=self.name, status=EMAIL_EVENTS.get(kind, DeliveryStatus.UNKNOWN), provider_ref=header_id,
            message_id=header_id.strip("<>").rpartition("@")[0] or None, event_id=_text(entry.get("id")),
            occurred_at=parse_timestamp(entry.get("timestamp")), provider_code=kind or None, raw=entry,
        )


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
