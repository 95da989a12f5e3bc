"""The HTTP voice driver against a real local voice API: call request, code mapping, lookups, callbacks."""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from providers.base import DeliveryStatus, OutboundMessage, ProviderRef, SendOutcome
from providers.http_common import signed_webhook_headers
from providers.http_voice import DEFAULT_RING_SECONDS, HttpVoiceProvider
from schema.states import Channel
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import Settings, load_settings

from provider_servers import API_KEY, FakeApi, close, free_port, hang, http_error, reject, running_fake_api

TIMEOUT = 0.5
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with running_fake_api() as server:
        yield server


@pytest.fixture(scope="module")
def settings() -> Settings:
    return dataclasses.replace(load_settings(), provider_timeout=TIMEOUT)


def make(settings: Settings, base_url: str, **extra: Any) -> HttpVoiceProvider:
    options = {"base_url": base_url, "api_key": API_KEY, "caller_id": "+4930123456", **extra}
    return HttpVoiceProvider.from_options("voice", options, settings)


@pytest.fixture
def provider(api: FakeApi, settings: Settings) -> Iterator[HttpVoiceProvider]:
    driver = make(settings, api.url("voice"))
    yield driver
    driver.close()


def message(**changes: Any) -> OutboundMessage:
    base = OutboundMessage(message_id=str(uuid.uuid4()), channel=Channel.VOICE, message_type="TXN",
                           recipient=f"+4917099{next(_numbers):06d}", body="Your code is 1 2 3 4")
    return dataclasses.replace(base, **changes)


def test_call_request_carries_text_record_flag_ring_timeout_and_our_id(api: FakeApi,
                                                                        provider: HttpVoiceProvider) -> None:
    msg = message(options={"record": True, "timeoutSeconds": 45})

    result = provider.send(msg)

    assert result.outcome is SendOutcome.ACCEPTED and result.provider_ref == result.raw["body"]["callId"]
    [request] = api.sends_to(msg.recipient)
    assert request.headers["x-api-key"] == API_KEY
    assert request.json() == {"to": msg.recipient, "text": msg.body, "record": True, "timeoutSeconds": 45,
                              "callerId": "+4930123456", "clientRef": msg.message_id}


def test_call_defaults_no_recording_and_default_ring_time(api: FakeApi, provider: HttpVoiceProvider) -> None:
    msg = message()

    provider.send(msg)

    payload = api.sends_to(msg.recipient)[0].json()
    assert (payload["record"], payload["timeoutSeconds"]) == (False, DEFAULT_RING_SECONDS)


@pytest.mark.parametrize(("code", "outcome", "error_code"), [
    ("INVALID_NUMBER", SendOutcome.REJECTED, Code.INVALID_MOBILE_NUMBER),
    ("TEXT_TOO_LONG", SendOutcome.REJECTED, Code.INVALID_VOICE_REQUEST),
    ("INSUFFICIENT_FUNDS", SendOutcome.REJECTED, Code.INSUFFICIENT_BALANCE),
    ("CAPACITY", SendOutcome.UNAVAILABLE, None),
    ("INTERNAL", SendOutcome.AMBIGUOUS, None),
    ("NEVER_HEARD_OF_IT", SendOutcome.AMBIGUOUS, None),
])
def test_error_codes_map_through_the_table(api: FakeApi, provider: HttpVoiceProvider, code: str,
                                           outcome: SendOutcome, error_code: Code | None) -> None:
    msg = message()
    api.script(msg.recipient, reject(code))

    result = provider.send(msg)

    assert (result.outcome, result.error_code, result.provider_code) == (outcome, error_code, code)
    assert result.raw["body"]["error"]["code"] == code


@pytest.mark.parametrize(("script", "outcome"), [
    (hang(), SendOutcome.AMBIGUOUS), (close(), SendOutcome.AMBIGUOUS), (http_error(502), SendOutcome.AMBIGUOUS),
    (http_error(429), SendOutcome.UNAVAILABLE),
], ids=["timeout", "dropped", "502", "429"])
def test_transport_failures_never_retry(api: FakeApi, provider: HttpVoiceProvider, script: Any,
                                        outcome: SendOutcome) -> None:
    msg = message()
    api.script(msg.recipient, script)

    assert provider.send(msg).outcome is outcome
    assert len(api.sends_to(msg.recipient)) == 1


def test_connection_refused_is_unavailable(settings: Settings) -> None:
    assert make(settings, f"http://127.0.0.1:{free_port()}").send(message()).outcome is SendOutcome.UNAVAILABLE


@pytest.mark.parametrize(("state", "status"), [
    ("ringing", DeliveryStatus.ACCEPTED), ("completed", DeliveryStatus.DELIVERED),
    ("answered", DeliveryStatus.DELIVERED), ("busy", DeliveryStatus.FAILED), ("no-answer", DeliveryStatus.FAILED),
    ("failed", DeliveryStatus.FAILED), ("teleported", DeliveryStatus.UNKNOWN),
])
def test_lookup_reports_state_and_billed_duration(api: FakeApi, provider: HttpVoiceProvider, state: str,
                                                  status: DeliveryStatus) -> None:
    sent = provider.send(message())
    assert sent.provider_ref is not None
    api.set_status(sent.provider_ref, state, duration=42 if status is DeliveryStatus.DELIVERED else 0)

    result = provider.fetch_status(ProviderRef("ignored", sent.provider_ref))

    assert result.status is status and result.provider_code == state
    assert result.duration_seconds == (42 if status is DeliveryStatus.DELIVERED else 0)


def test_lookup_by_our_id_and_of_an_unknown_call(provider: HttpVoiceProvider) -> None:
    msg = message()
    sent = provider.send(msg)

    found = provider.fetch_status(ProviderRef(msg.message_id))
    missing = provider.fetch_status(ProviderRef(str(uuid.uuid4())))

    assert found.status is DeliveryStatus.ACCEPTED and found.provider_ref == sent.provider_ref
    assert missing.status is DeliveryStatus.NOT_FOUND and missing.provider_code == "CALL_NOT_FOUND"


def test_failed_lookup_is_unknown(settings: Settings) -> None:
    driver = make(settings, f"http://127.0.0.1:{free_port()}")

    assert driver.fetch_status(ProviderRef("m", "call-1")).status is DeliveryStatus.UNKNOWN


@pytest.mark.parametrize(("state", "status"), [
    ("completed", DeliveryStatus.DELIVERED), ("answered", DeliveryStatus.DELIVERED),
    ("busy", DeliveryStatus.FAILED), ("no-answer", DeliveryStatus.FAILED), ("failed", DeliveryStatus.FAILED),
])
def test_call_callback_maps_state_and_duration(settings: Settings, state: str, status: DeliveryStatus) -> None:
    payload = {"callId": "call-7", "clientRef": "m-7", "status": state, "durationSeconds": 17,
               "timestamp": "2026-03-01T10:00:00+00:00", "eventId": "ev-1"}

    [event] = make(settings, "http://127.0.0.1:9").parse_callback({"Content-Type": "application/json"},
                                                                  json.dumps(payload).encode())

    assert (event.status, event.provider_ref, event.message_id, event.event_id) == (status, "call-7", "m-7", "ev-1")
    assert event.duration_seconds == 17 and event.raw == payload and event.occurred_at is not None


def test_form_callback_and_signature(settings: Settings) -> None:
    driver = make(settings, "http://127.0.0.1:9", webhook_secret="voice-secret")
    body = urlencode({"callId": "call-8", "status": "completed", "durationSeconds": "9"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_webhook_headers("voice-secret", body)}

    [event] = driver.parse_callback(headers, body)

    assert event.status is DeliveryStatus.DELIVERED and event.duration_seconds == 9
    with pytest.raises(ValidationError):
        driver.parse_callback({**headers, "X-Signature": "bad"}, body)


def test_configuration_is_checked_and_secrets_are_not_shown(settings: Settings) -> None:
    assert API_KEY not in repr(make(settings, "http://127.0.0.1:9"))
    with pytest.raises(ConfigurationError):
        HttpVoiceProvider.from_options("voice", {"base_url": "http://127.0.0.1:9"}, settings)
