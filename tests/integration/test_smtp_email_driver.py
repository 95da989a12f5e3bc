"""The SMTP email driver against a real local aiosmtpd server, with STARTTLS and AUTH when openssl is available."""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.headerregistry import Address
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from providers.base import DeliveryStatus, OutboundMessage, ProviderRef, SendOutcome
from providers.smtp_email import SmtpEmailProvider, build_email, html_to_text
from schema.states import Channel
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import Settings, load_settings

from provider_servers import FakeSmtp, free_port, running_fake_smtp, self_signed_certificate

TIMEOUT = 0.5
FROM = "noreply@hexavox.test"
_mailboxes = itertools.count(1)
HTML = "<html><head><style>p{}</style></head><body><p>Hello &amp; welcome</p><p>.dot line<br>two</p></body></html>"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return dataclasses.replace(load_settings(), provider_timeout=TIMEOUT)


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSmtp]:
    with running_fake_smtp() as server:
        yield server


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    files = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if files is None:
        pytest.skip("no openssl command (and no cryptography package) to make a certificate: STARTTLS untested")
    return files


@pytest.fixture(scope="module")
def smtp_tls(tls_files: tuple[Path, Path]) -> Iterator[FakeSmtp]:
    with running_fake_smtp(tls_files=tls_files, users={"mailer": "pa55word"}) as server:
        yield server


def make(settings: Settings, server: FakeSmtp | None, **extra: Any) -> SmtpEmailProvider:
    host, port = (server.host, server.port) if server else ("127.0.0.1", free_port())
    options = {"host": host, "port": port, "from_address": FROM, "starttls": False, "local_hostname": "worker.test",
               **extra}
    return SmtpEmailProvider.from_options("smtp", options, settings)


def message(**changes: Any) -> OutboundMessage:
    base = OutboundMessage(message_id=str(uuid.uuid4()), channel=Channel.EMAIL, message_type="TRANSACTIONAL",
                           recipient=f"user{next(_mailboxes)}@example.com", body=HTML, subject="Welcome, Jürgen")
    return dataclasses.replace(base, **changes)


def test_accepted_message_has_html_and_text_parts_and_a_findable_message_id(settings: Settings,
                                                                             smtp: FakeSmtp) -> None:
    msg = message()

    result = make(settings, smtp).send(msg)

    assert result.outcome is SendOutcome.ACCEPTED and result.provider_code == "250"
    assert result.final  # the relay's 250 is the last word SMTP gives: dispatch settles it DELIVERED
    assert result.provider_ref == f"<{msg.message_id}@hexavox.test>"
    [received] = [r for r in smtp.recorder.received if r.rcpt_tos == [msg.recipient]]
    parsed = message_from_bytes(received.data, policy=default)
    assert (received.mail_from, parsed["From"], parsed["To"]) == (FROM, FROM, msg.recipient)
    assert (str(parsed["Subject"]), parsed["Message-ID"]) == (msg.subject, result.provider_ref)
    assert parsed.get_content_type() == "multipart/alternative"
    plain, rich = parsed.iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == "Hello & welcome\n.dot line\ntwo\n"
    assert rich.get_content().strip() == HTML  # ".dot" survived dot-stuffing


def test_starttls_and_auth(settings: Settings, smtp_tls: FakeSmtp) -> None:
    driver = make(settings, smtp_tls, starttls=True, username="mailer", password="pa55word", ca_file=smtp_tls.ca_file)

    result = driver.send(message())

    assert result.outcome is SendOutcome.ACCEPTED
    assert smtp_tls.recorder.logins[-1] == "mailer"  # the server only allows AUTH after STARTTLS
    assert "pa55word" not in repr(driver)


def test_wrong_password_is_unavailable_and_sends_nothing(settings: Settings, smtp_tls: FakeSmtp) -> None:
    msg = message()
    driver = make(settings, smtp_tls, starttls=True, username="mailer", password="wrong", ca_file=smtp_tls.ca_file)

    assert driver.send(msg).outcome is SendOutcome.UNAVAILABLE
    assert smtp_tls.recorder.attempts_for(msg.recipient) == 0


def test_untrusted_certificate_is_unavailable(settings: Settings, smtp_tls: FakeSmtp) -> None:
    assert make(settings, smtp_tls, starttls=True).send(message()).outcome is SendOutcome.UNAVAILABLE


def test_starttls_required_but_not_offered_never_falls_back(settings: Settings, smtp: FakeSmtp) -> None:
    msg = message()

    result = make(settings, smtp, starttls=True).send(msg)

    assert result.outcome is SendOutcome.UNAVAILABLE and result.raw["error"] == "SMTPNotSupportedError"
    assert smtp.recorder.attempts_for(msg.recipient) == 0


INJECTIONS = ("Hi\r\nBcc: evil@example.org", "Hi\nBcc: evil@example.org", "=?UTF-8?Q?=0A?=Bcc: evil@example.org",
              "Hi=?UTF-8?Q?=0D=0A?=Bcc: evil@example.org")


@pytest.mark.parametrize("subject", INJECTIONS)
def test_subject_header_injection_is_refused_before_anything_is_sent(settings: Settings, smtp: FakeSmtp,
                                                                     subject: str) -> None:
    msg = message(subject=subject)

    result = make(settings, smtp).send(msg)

    assert result.outcome is SendOutcome.REJECTED and result.error_code is Code.INVALID_EMAIL_CONTENT
    assert smtp.recorder.attempts_for(msg.recipient) == 0


@pytest.mark.parametrize("recipient", ["a@example.com\r\nBcc: evil@example.org", "a@example.com\nBcc: x@y.z",
                                       "not an address", "jürgen@example.com"])
def test_bad_recipient_is_refused_as_invalid_email(settings: Settings, smtp: FakeSmtp, recipient: str) -> None:
    result = make(settings, smtp).send(message(recipient=recipient))

    assert result.outcome is SendOutcome.REJECTED and result.error_code is Code.INVALID_EMAIL


@pytest.mark.parametrize("subject", ["Grüße aus Köln " * 10, "50% off: =?not an encoded word", "Re: [#42] ok"])
def test_produced_bytes_parse_back_to_exactly_our_headers(subject: str) -> None:
    msg = message(subject=subject)

    produced = build_email(msg, Address(addr_spec=FROM)).as_bytes()

    parsed = message_from_bytes(produced, policy=default)
    assert sorted(parsed.keys()) == ["Content-Type", "Date", "From", "MIME-Version", "Message-ID", "Subject", "To"]
    assert str(parsed["Subject"]) == subject and "Bcc" not in parsed


@pytest.mark.parametrize(("script", "outcome", "error_code"), [
    ("rcpt:550 5.1.1 No such user", SendOutcome.REJECTED, Code.INVALID_EMAIL),
    ("rcpt:553 5.1.3 Bad address", SendOutcome.REJECTED, Code.INVALID_EMAIL),
    ("rcpt:450 4.2.0 Greylisted", SendOutcome.UNAVAILABLE, None),
    ("554 5.7.1 Content refused", SendOutcome.REJECTED, Code.PROVIDER_REJECTED),
    ("451 4.3.0 Try later", SendOutcome.UNAVAILABLE, None),
    ("399 what is this", SendOutcome.AMBIGUOUS, None),
])
def test_smtp_replies_map_through_the_table(settings: Settings, smtp: FakeSmtp, script: str, outcome: SendOutcome,
                                            error_code: Code | None) -> None:
    msg = message()
    smtp.recorder.scripts[msg.recipient] = script

    result = make(settings, smtp).send(msg)

    assert (result.outcome, result.error_code) == (outcome, error_code)
    assert result.provider_code == script.removeprefix("rcpt:")[:3] and result.raw["smtp_reply"]


@pytest.mark.parametrize("script", ["hang", "close"])
def test_losing_the_answer_after_the_content_is_ambiguous_and_sent_once(settings: Settings, smtp: FakeSmtp,
                                                                        script: str) -> None:
    msg = message()
    smtp.recorder.scripts[msg.recipient] = script

    result = make(settings, smtp).send(msg)

    assert result.outcome is SendOutcome.AMBIGUOUS and result.raw["content_started"] is True
    assert smtp.recorder.attempts_for(msg.recipient) == 1


def test_connection_refused_is_unavailable(settings: Settings) -> None:
    result = make(settings, None).send(message())

    assert result.outcome is SendOutcome.UNAVAILABLE and result.raw["error"] == "ConnectionRefusedError"


def test_smtp_has_no_status_lookup(settings: Settings) -> None:
    result = make(settings, None).fetch_status(ProviderRef("m", "<m@hexavox.test>"))

    assert result.status is DeliveryStatus.UNKNOWN and result.provider_ref == "<m@hexavox.test>"


def test_bounce_webhook_events(settings: Settings) -> None:
    our_id = str(uuid.uuid4())
    payload = [{"event": "bounce", "messageId": f"<{our_id}@hexavox.test>", "timestamp": 1700000000, "id": "e1"},
               {"event": "delivered", "messageId": f"<{our_id}@hexavox.test>"},
               {"event": "opened", "messageId": f"<{our_id}@hexavox.test>"}]

    events = make(settings, None).parse_callback({}, json.dumps(payload).encode())

    assert [e.status for e in events] == [DeliveryStatus.FAILED, DeliveryStatus.DELIVERED, DeliveryStatus.UNKNOWN]
    assert {e.message_id for e in events} == {our_id} and [e.raw for e in events] == payload
    assert make(settings, None).parse_callback({}, b"<html>not json</html>") == []


def test_bounce_webhook_signature(settings: Settings) -> None:
    with pytest.raises(ValidationError):
        make(settings, None, webhook_secret="k").parse_callback({"X-Signature": "00"}, b"[]")


def test_html_to_text_is_a_simple_readable_fallback() -> None:
    assert html_to_text("<p>A &amp;<b>b</b></p><script>alert(1)</script><div>c<br/>d</div>") == "A &b\nc\nd\n"


@pytest.mark.parametrize("options", [{"username": "u", "password": "p", "starttls": False}, {"from_address": "x"},
                                     {"portt": 25}])
def test_unsafe_or_wrong_options_fail_at_start_up(settings: Settings, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        make(settings, None, **options)


def test_an_email_the_relay_accepted_is_delivered_and_billed_at_dispatch(hexavox_env: dict[str, str], smtp: FakeSmtp,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this, a relayed email would wait for a report SMTP never sends, then expire and be refunded."""
    from providers.registry import reset_providers
    from schema.models import Balance, Message
    from worker.db import session_scope
    from worker.policy.dispatch import DispatchStep, dispatch_message
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings, reset_settings

    from factories import make_merchant, make_tenant

    # Given a merchant whose email goes out through the SMTP relay
    options = {"driver": "smtp_email", "host": smtp.host, "port": smtp.port, "from_address": FROM,
               "starttls": False}
    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps({"relay": options}))
    monkeypatch.setenv("HEXAVOX_DEFAULT_PROVIDER", "relay")
    reset_settings()
    reset_providers()
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    answer = run_send_job("hexavox.email.send.v1", {"auth": tenant.auth, "merchantId": "gym-a",
                                                    "to": "member@example.com", "subject": "Receipt",
                                                    "body": "<p>Thanks</p>", "type": "TRANSACTIONAL"},
                          str(uuid.uuid4())).result["messages"][0]

    # When it is dispatched
    settings = get_settings()
    assert dispatch_message(answer["messageId"], settings, provider_sender(settings)) == DispatchStep.SENT

    # Then it is DELIVERED and FINAL, and its unit stays charged
    with session_scope() as session:
        mail = session.get(Message, answer["messageId"])
        balance = session.get(Balance, (merchant_id, "EMAIL"))
        assert mail is not None and balance is not None
        assert (mail.status, mail.freshness, mail.provider) == ("DELIVERED", "FINAL", "relay")
        assert balance.used == 1
