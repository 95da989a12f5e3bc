"""SMTP email driver: one message per SMTP transaction, with an HTML part and a plain-text part derived from it.

The transaction is driven command by command (MAIL, RCPT, DATA, content) rather than with ``sendmail`` so the
driver knows how far it got when something fails: until the content has started to go out nothing can be
delivered, so a failure is UNAVAILABLE; once it has, a timeout or a dropped connection is AMBIGUOUS (the server may
have queued it before the reply was lost). Explicit replies follow RFC 5321's classes: 4yz is transient
(UNAVAILABLE), 5yz permanent (REJECTED), mapped to catalogue codes through :data:`SMTP_REPLY_CODES`.

The message itself (headers, parts, the DATA payload) is built in providers/smtp_message.py; what every reply and
failure means is decided by :mod:`providers.outcomes`.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
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
from providers.outcomes import SmtpReply, SmtpReplyTable, TransportFailure, result_for
from providers.smtp_message import build_email, dot_stuffed, email_address, html_to_text, message_id_header
from schema.states import Channel
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import Settings

__all__ = ["SmtpEmailProvider", "SMTP_REPLY_CODES", "EMAIL_EVENTS", "build_email", "html_to_text", "message_id_header"]

log = logging.getLogger(__name__)

_R, _U = SendOutcome.REJECTED, SendOutcome.UNAVAILABLE
#: Reply codes with a meaning more precise than their class. Any other 4yz is UNAVAILABLE and any other 5yz is
#: REJECTED (PROVIDER_REJECTED); a reply outside both classes is AMBIGUOUS once the content has gone out.
SMTP_REPLY_CODES: SmtpReplyTable = {
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


def _reply_result(provider: str, phase: str, code: int, reply: bytes, progress: _Progress) -> SendResult:
    """A refusal reply as an outcome; a reply outside 4yz/5yz is AMBIGUOUS only once the content went out."""
    raw = {"phase": phase, "smtp_code": code, "smtp_reply": reply.decode("utf-8", "replace")}
    evidence = SmtpReply(code, phase, progress.content_started, SMTP_REPLY_CODES)
    return result_for(provider, evidence, detail=f"{phase} answered {code} {raw['smtp_reply']}", raw=raw)


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
            sender = email_address(read.text("from_address"), Code.INVALID_EMAIL, "from_address")
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
        evidence = TransportFailure(err, request_written=progress.content_started)
        if progress.content_started:
            return result_for(self.name, evidence, detail=f"connection lost after the content was sent: {err}", raw=raw)
        return result_for(self.name, evidence, detail=f"nothing sent: {type(err).__name__}: {err}", raw=raw)

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
        smtp.send(dot_stuffed(email.as_bytes()))
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
