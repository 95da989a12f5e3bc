"""One contract, every driver: what dispatch and reconcile may rely on whichever provider is configured.

Each driver runs against a real local server (or, for the simulator, its ledger) through a small harness that knows
how to make that server accept, refuse, answer with a code nobody mapped, or hang after reading the request.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.base import DeliveryEvent, OutboundMessage, Provider, ProviderRef, SendOutcome, SendResult, StatusResult
from providers.registry import get_provider, reset_providers
from schema.states import Channel
from worker.catalogue import Code
from worker.settings import Settings, load_settings

from provider_servers import (
    API_KEY,
    FakeApi,
    FakeSmtp,
    free_port,
    hang,
    reject,
    running_fake_api,
    running_fake_smtp,
)

TIMEOUT = 0.5
DRIVERS = ["http_sms-hexa", "http_sms-panel", "http_voice", "smtp_email", "simulated"]
_counter = itertools.count(1)


@dataclasses.dataclass
class Harness:
    """How to drive one provider through the contract's scenarios."""

    driver: str
    options: Callable[[str], dict[str, Any]]  #: scenario -> driver options ("refused" points at a dead port)
    message: Callable[[str], OutboundMessage]  #: scenario -> a message the server is scripted to treat so
    received: Callable[[OutboundMessage], int]  #: how many times the server got this message
    callback: Callable[[OutboundMessage, SendResult], tuple[dict[str, str], bytes]]
    settings: Settings
    unsupported: frozenset[str] = frozenset()
    built: list[Any] = dataclasses.field(default_factory=list)

    def provider(self, scenario: str) -> Provider:
        assert scenario not in self.unsupported, f"{self.driver} cannot be scripted for {scenario!r}"
        name = f"contract-{self.driver}-{scenario}"
        options = {"driver": self.driver.partition("-")[0], **self.options(scenario)}
        provider = get_provider(name, dataclasses.replace(self.settings, providers={name: options}))
        self.built.append(provider)
        return provider


# -- servers --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> Settings:
    return dataclasses.replace(load_settings(), provider_timeout=TIMEOUT)


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with running_fake_api() as server:
        yield server


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSmtp]:
    with running_fake_smtp() as server:
        yield server


# -- harnesses ------------------------------------------------------------------------------------------------

HTTP_CODES = {  # driver -> (a mapped refusal, a code no table knows)
    "http_sms-hexa": ("E406", "E999"),
    "http_sms-panel": ("202", "999"),
    "http_voice": ("INVALID_NUMBER", "MYSTERY_CODE"),
}


def _http_harness(driver: str, api: FakeApi, settings: Settings) -> Harness:
    api_name = {"http_sms-hexa": "hexa", "http_sms-panel": "panel", "http_voice": "voice"}[driver]
    channel = Channel.VOICE if driver == "http_voice" else Channel.SMS
    mapped, unknown = HTTP_CODES[driver]

    def options(scenario: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{free_port()}" if scenario == "refused" else api.url(api_name)
        extra = {"shape": api_name} if driver.startswith("http_sms") else {}
        return {"base_url": url, "api_key": API_KEY, **extra}

    def message(scenario: str) -> OutboundMessage:
        msg = OutboundMessage(str(uuid.uuid4()), channel, "TXN", f"+4915219{next(_counter):06d}", "Code 1234",
                              sender="HEXAVX")
        scripts = {"reject": reject(mapped), "unknown_code": reject(unknown), "timeout": hang()}
        if scenario in scripts:
            api.script(msg.recipient, scripts[scenario])
        return msg

    def callback(msg: OutboundMessage, result: SendResult) -> tuple[dict[str, str], bytes]:
        payloads: dict[str, Any] = {
            "http_sms-hexa": {"message_id": result.provider_ref, "status": "DELIVRD"},
            "http_sms-panel": [{"requestId": result.provider_ref, "clientRef": msg.message_id,
                                "report": [{"number": msg.recipient, "status": "1", "desc": "DELIVERED"}]}],
            "http_voice": {"callId": result.provider_ref, "status": "completed", "durationSeconds": 12},
        }
        return {"Content-Type": "application/json"}, json.dumps(payloads[driver]).encode()

    return Harness(driver, options, message, lambda msg: len(api.sends_to(msg.recipient)), callback, settings)


def _smtp_harness(smtp: FakeSmtp, settings: Settings) -> Harness:
    def options(scenario: str) -> dict[str, Any]:
        port = free_port() if scenario == "refused" else smtp.port
        return {"host": smtp.host, "port": port, "starttls": False, "from_address": "noreply@hexavox.test",
                "local_hostname": "worker.test"}

    def message(scenario: str) -> OutboundMessage:
        msg = OutboundMessage(str(uuid.uuid4()), Channel.EMAIL, "TRANSACTIONAL",
                              f"contract{next(_counter)}@example.com", "<p>Hello</p>", subject="Hello")
        scripts = {"reject": "rcpt:550 5.1.1 No such user", "unknown_code": "399 what", "timeout": "hang"}
        if scenario in scripts:
            smtp.recorder.scripts[msg.recipient] = scripts[scenario]
        return msg

    def callback(msg: OutboundMessage, result: SendResult) -> tuple[dict[str, str], bytes]:
        return {}, json.dumps({"event": "delivered", "messageId": result.provider_ref}).encode()

    return Harness("smtp_email", options, message, lambda msg: smtp.recorder.attempts_for(msg.recipient), callback,
                   settings)


def _simulated_harness(ledger: Path, settings: Settings) -> Harness:
    import providers.simulated as simulated
    url = f"sqlite:///{ledger}"
    rates = {"reject": {"reject_rate": 1.0}, "timeout": {"ambiguous_rate": 1.0}, "refused": {"unavailable_rate": 1.0}}

    def message(scenario: str) -> OutboundMessage:
        return OutboundMessage(str(uuid.uuid4()), Channel.SMS, "TXN", f"+4915219{next(_counter):06d}", "Code 1234")

    def received(msg: OutboundMessage) -> int:
        return sum(1 for row in simulated.ledger_calls(url, msg.message_id) if row["outcome"] != "unavailable")

    def callback(msg: OutboundMessage, result: SendResult) -> tuple[dict[str, str], bytes]:
        [row] = simulated.ledger_calls(url, msg.message_id)
        return {"Content-Type": "application/json"}, json.dumps(simulated.report_payload(row)).encode()

    return Harness("simulated", lambda scenario: {"ledger_url": url, **rates.get(scenario, {})}, message, received,
                   callback, settings, unsupported=frozenset({"unknown_code"}))


@pytest.fixture(params=DRIVERS)
def harness(request: pytest.FixtureRequest, api: FakeApi, smtp: FakeSmtp, settings: Settings,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    driver = str(request.param)
    if driver == "simulated":
        made = _simulated_harness(tmp_path_factory.mktemp("simulator") / "ledger.db", settings)
    elif driver == "smtp_email":
        made = _smtp_harness(smtp, settings)
    else:
        made = _http_harness(driver, api, settings)
    reset_providers()
    yield made
    for provider in made.built:
        getattr(provider, "close", lambda: None)()
    reset_providers()
    if driver == "simulated":
        from worker.db import dispose_engines

        dispose_engines()


def send(harness: Harness, scenario: str) -> tuple[OutboundMessage, SendResult]:
    provider = harness.provider(scenario)
    msg = harness.message(scenario)
    result = provider.send(msg)
    assert type(result) is SendResult, f"send must return a SendResult, got {result!r}"
    assert result.provider == provider.name and result.raw is not None
    return msg, result


# -- the contract ---------------------------------------------------------------------------------------------


def test_driver_is_built_by_the_registry_and_meets_the_protocol(harness: Harness) -> None:
    provider = harness.provider("accept")

    assert isinstance(provider, Provider)
    assert provider.channels and provider.max_rps >= 0
    assert API_KEY not in repr(provider)


def test_accepted_send_names_the_providers_reference(harness: Harness) -> None:
    msg, result = send(harness, "accept")

    assert result.outcome is SendOutcome.ACCEPTED and result.provider_ref
    assert harness.received(msg) <= 1


def test_refusal_is_final_and_carries_a_catalogue_code(harness: Harness) -> None:
    _, result = send(harness, "reject")

    assert result.outcome is SendOutcome.REJECTED and isinstance(result.error_code, Code)
    assert result.provider_code and result.provider_ref is None


#: The simulator only speaks its own mapped codes, so it cannot be made to answer an unknown one.
@pytest.mark.parametrize("harness", [d for d in DRIVERS if d != "simulated"], indirect=True)
def test_unknown_provider_code_is_never_a_success(harness: Harness) -> None:
    _, result = send(harness, "unknown_code")

    assert result.outcome is SendOutcome.AMBIGUOUS and result.provider_code


def test_timeout_after_the_request_arrived_is_ambiguous_and_never_retried(harness: Harness) -> None:
    msg, result = send(harness, "timeout")

    assert result.outcome is SendOutcome.AMBIGUOUS
    assert harness.received(msg) == 1


def test_connection_refused_is_unavailable(harness: Harness) -> None:
    msg, result = send(harness, "refused")

    assert result.outcome is SendOutcome.UNAVAILABLE and result.provider_ref is None
    assert harness.received(msg) == 0


def test_status_lookup_answers_with_a_status_result(harness: Harness) -> None:
    msg, sent = send(harness, "accept")
    provider = harness.provider("accept")

    by_ref = provider.fetch_status(ProviderRef(msg.message_id, sent.provider_ref))
    by_our_id = provider.fetch_status(ProviderRef(msg.message_id))

    for status in (by_ref, by_our_id):
        assert type(status) is StatusResult
        assert status.status.value != "NOT_FOUND"  # it was received: a lookup must never invite a resend


def test_status_lookup_of_a_message_never_sent_is_never_a_success(harness: Harness) -> None:
    status = harness.provider("accept").fetch_status(ProviderRef(str(uuid.uuid4())))

    assert type(status) is StatusResult and status.status.value in {"NOT_FOUND", "UNKNOWN"}


def test_delivery_callback_gives_events_with_the_raw_payload(harness: Harness) -> None:
    msg, sent = send(harness, "accept")
    headers, body = harness.callback(msg, sent)

    events = harness.provider("accept").parse_callback(headers, body)

    assert events and all(type(event) is DeliveryEvent and event.raw is not None for event in events)
    assert events[0].status.value == "DELIVERED" and events[0].provider_ref == sent.provider_ref


def test_contract_suite_covers_every_registered_driver() -> None:
    from providers.registry import DRIVERS as REGISTERED

    assert {driver.partition("-")[0] for driver in DRIVERS} == set(REGISTERED)
