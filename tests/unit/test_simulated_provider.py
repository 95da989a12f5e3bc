"""The simulated provider: deterministic outcomes, a ledger written before the answer, status from the ledger."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from providers.base import DeliveryStatus, OutboundMessage, Provider, ProviderRef, SendOutcome
from providers.registry import get_provider, reset_providers
from providers.simulated import (
    PROVIDER_CODES,
    SIGNATURE_HEADER,
    SimulatedProvider,
    SimulatorConfig,
    ledger_calls,
    ledger_counts,
    pending_reports,
    report_payload,
    sign_callback,
)
from schema.states import Channel
from worker.catalogue import Code
from worker.errors import ConfigurationError, ValidationError
from worker.settings import load_settings


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def sim(ledger_url: str, *, name: str = "sim", **options: Any) -> SimulatedProvider:
    return SimulatedProvider(name, SimulatorConfig(ledger_url=ledger_url, **options))


def msg(message_id: str, channel: Channel = Channel.SMS) -> OutboundMessage:
    recipient = "someone@example.com" if channel is Channel.EMAIL else "+14155550100"
    return OutboundMessage(message_id=message_id, channel=channel, message_type="TXN", recipient=recipient, body="hi")


MIXED: dict[str, Any] = {"seed": 7, "reject_rate": 0.2, "unavailable_rate": 0.2, "ambiguous_rate": 0.2}


def test_the_simulator_implements_the_provider_protocol_for_every_channel(ledger: str) -> None:
    provider = sim(ledger)
    assert isinstance(provider, Provider)
    assert provider.channels == frozenset(Channel)


def test_outcomes_are_the_same_whatever_the_order_or_thread(tmp_path: Path) -> None:
    ids = [f"m{i}" for i in range(120)]
    first = sim(f"sqlite:///{tmp_path / 'a.db'}", **MIXED)
    in_order = {i: first.send(msg(i)).outcome for i in ids}
    second = sim(f"sqlite:///{tmp_path / 'b.db'}", **MIXED)
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = dict(zip(reversed(ids), pool.map(lambda i: second.send(msg(i)).outcome, reversed(ids)), strict=True))
    assert threaded == in_order
    assert set(in_order.values()) == set(SendOutcome)


def test_a_different_seed_gives_different_outcomes(tmp_path: Path) -> None:
    ids = [f"m{i}" for i in range(60)]
    one = sim(f"sqlite:///{tmp_path / 'a.db'}", **MIXED)
    other = sim(f"sqlite:///{tmp_path / 'b.db'}", **{**MIXED, "seed": 8})
    assert [one.send(msg(i)).outcome for i in ids] != [other.send(msg(i)).outcome for i in ids]


@pytest.mark.parametrize(("option", "outcome"), [
    ("reject_rate", SendOutcome.REJECTED),
    ("unavailable_rate", SendOutcome.UNAVAILABLE),
    ("ambiguous_rate", SendOutcome.AMBIGUOUS),
    ("latency_ms", SendOutcome.ACCEPTED),
])
def test_each_outcome_is_reached_by_setting_its_rate(ledger: str, option: str, outcome: SendOutcome) -> None:
    options: dict[str, Any] = {option: 1.0}
    result = sim(ledger, **options).send(msg("m1"))
    assert result.outcome is outcome
    assert result.provider == "sim"


def test_an_ambiguous_send_is_in_the_ledger_as_accepted_although_the_answer_was_lost(ledger: str) -> None:
    provider = sim(ledger, ambiguous_rate=1.0)
    result = provider.send(msg("m1"))
    assert result.outcome is SendOutcome.AMBIGUOUS
    assert ledger_counts(ledger) == {"m1": 1}
    assert provider.fetch_status(ProviderRef("m1")).status is DeliveryStatus.DELIVERED


def test_the_ledger_row_is_committed_before_the_send_answers(ledger: str) -> None:
    provider = sim(ledger, latency_ms=400)
    sender = threading.Thread(target=provider.send, args=(msg("m1"),))
    sender.start()
    deadline = time.monotonic() + 0.3
    while not ledger_calls(ledger) and time.monotonic() < deadline:
        time.sleep(0.01)
    seen_while_waiting = ledger_calls(ledger)
    still_sending = sender.is_alive()
    sender.join()
    assert still_sending and [row["outcome"] for row in seen_while_waiting] == ["accepted"]


def test_an_unavailable_send_is_recorded_as_never_having_reached_the_provider(ledger: str) -> None:
    provider = sim(ledger, unavailable_rate=1.0)
    assert provider.send(msg("m1")).outcome is SendOutcome.UNAVAILABLE
    assert provider.send(msg("m1")).outcome is SendOutcome.UNAVAILABLE
    calls = [(row["outcome"], row["attempt"]) for row in ledger_calls(ledger)]
    assert calls == [("unavailable", 1), ("unavailable", 2)]
    assert ledger_counts(ledger) == {}
    assert provider.fetch_status(ProviderRef("m1")).status is DeliveryStatus.NOT_FOUND


def test_a_message_the_provider_never_saw_is_not_found(ledger: str) -> None:
    provider = sim(ledger)
    provider.send(msg("other"))
    assert provider.fetch_status(ProviderRef("unknown")).status is DeliveryStatus.NOT_FOUND
    assert provider.fetch_status(ProviderRef("unknown", "sim-nope")).status is DeliveryStatus.NOT_FOUND


def test_sending_the_same_message_again_returns_the_same_reference_and_records_both_calls(ledger: str) -> None:
    provider = sim(ledger)
    first, second = provider.send(msg("m1")), provider.send(msg("m1"))
    assert first.outcome is second.outcome is SendOutcome.ACCEPTED
    assert first.provider_ref == second.provider_ref == provider.reference("m1")
    calls = ledger_calls(ledger, "m1")
    assert [(row["attempt"], row["replay"]) for row in calls] == [(1, False), (2, True)]
    assert len({row["provider_ref"] for row in calls}) == 1
    assert ledger_counts(ledger) == {"m1": 2}


def test_a_retry_after_unavailability_gets_a_new_attempt_with_a_new_draw(ledger: str) -> None:
    provider = sim(ledger, unavailable_rate=0.5, seed=3)
    outcomes = [provider.send(msg("m1")).outcome for _ in range(12)]
    assert SendOutcome.UNAVAILABLE in outcomes and SendOutcome.ACCEPTED in outcomes


@pytest.mark.parametrize(("channel", "codes"), [
    (Channel.SMS, {"SIM-21", "SIM-30"}), (Channel.VOICE, {"SIM-21", "SIM-30"}), (Channel.EMAIL, {"SIM-23", "SIM-30"}),
])
def test_a_refusal_carries_a_provider_code_mapped_to_the_catalogue(ledger: str, channel: Channel,
                                                                     codes: set[str]) -> None:
    provider = sim(ledger, reject_rate=1.0)
    results = [provider.send(msg(f"m{i}", channel)) for i in range(20)]
    assert {r.provider_code for r in results} == codes
    assert all(r.error_code is PROVIDER_CODES[str(r.provider_code)] for r in results)
    assert PROVIDER_CODES["SIM-21"] is Code.INVALID_MOBILE_NUMBER
    assert provider.fetch_status(ProviderRef("m0")).status is DeliveryStatus.FAILED


def test_the_delivery_report_stays_pending_until_its_delay_has_passed(ledger: str) -> None:
    provider = sim(ledger, dlr_delay_ms=300)
    ref = ProviderRef("m1", provider.send(msg("m1")).provider_ref)
    assert provider.fetch_status(ref).status is DeliveryStatus.ACCEPTED
    assert pending_reports(ledger, int(time.time() * 1000)) == []
    time.sleep(0.35)
    assert provider.fetch_status(ref).status is DeliveryStatus.DELIVERED
    assert [row["message_id"] for row in pending_reports(ledger, int(time.time() * 1000))] == ["m1"]


def test_a_failed_delivery_report_reads_back_as_failed_with_its_code(ledger: str) -> None:
    provider = sim(ledger, dlr_failure_rate=1.0)
    provider.send(msg("m1"))
    status = provider.fetch_status(ProviderRef("m1"))
    assert (status.status, status.provider_code) == (DeliveryStatus.FAILED, "SIM-40")


def test_a_delivered_voice_call_reports_a_duration(ledger: str) -> None:
    provider = sim(ledger)
    provider.send(msg("v1", Channel.VOICE))
    duration = provider.fetch_status(ProviderRef("v1")).duration_seconds
    assert duration is not None and 5 <= duration < 60


def test_concurrent_threads_each_get_exactly_one_ledger_call(ledger: str) -> None:
    provider = sim(ledger, seed=1, ambiguous_rate=0.3)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: provider.send(msg(f"m{i}")), range(80)))
    assert ledger_counts(ledger) == {f"m{i}": 1 for i in range(80)}


def test_the_ledger_works_on_postgresql(database_url: str) -> None:
    provider = sim(database_url, seed=5, ambiguous_rate=1.0)
    assert provider.send(msg("pg1")).outcome is SendOutcome.AMBIGUOUS
    assert provider.send(msg("pg1")).outcome is SendOutcome.AMBIGUOUS
    assert [row["replay"] for row in ledger_calls(database_url, "pg1")] == [False, True]
    assert provider.fetch_status(ProviderRef("pg1")).status is DeliveryStatus.DELIVERED


# -- configuration ------------------------------------------------------------------------------------------------


def test_instance_options_win_over_simulator_settings_and_the_ledger_defaults_to_the_database(ledger: str) -> None:
    settings = dataclasses.replace(load_settings(), database_url=ledger,
                                   simulator={"seed": "9", "reject_rate": "1", "latency_ms": "5"})
    provider = SimulatedProvider.from_options("sim", {"reject_rate": 0.25, "max_rps": 40}, settings)
    config = provider.config
    assert (config.seed, config.reject_rate, config.latency_ms, config.ledger_url) == (9, 0.25, 5.0, ledger)
    assert provider.max_rps == 40.0


def test_the_registry_builds_the_simulator_from_its_configured_options(ledger: str) -> None:
    configured: dict[str, dict[str, object]] = {"fake-sms": {"driver": "simulated", "ledger_url": ledger}}
    settings = dataclasses.replace(load_settings(), providers=configured)
    reset_providers()
    try:
        provider = get_provider("fake-sms", settings)
        assert isinstance(provider, SimulatedProvider) and provider.name == "fake-sms"
    finally:
        reset_providers()


@pytest.mark.parametrize("options", [{"reject_rate": 1.5}, {"latency_ms": -1}, {"sede": 1}, {"seed": "x"}])
def test_bad_simulator_options_are_refused_at_start_up(ledger: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SimulatorConfig.from_mapping(options, ledger)


# -- callbacks ----------------------------------------------------------------------------------------------------


def test_a_list_of_delivery_reports_is_parsed_with_raw_kept(ledger: str) -> None:
    body = [{"ref": "sim-1", "messageId": "m1", "status": "DELIVERED", "eventId": "e1", "at": "2024-05-01T10:00:00Z"},
            {"ref": "sim-2", "messageId": "m2", "status": "FAILED", "eventId": "e2", "code": "SIM-40"}]
    events = sim(ledger).parse_callback({}, json.dumps(body).encode())
    assert [(e.provider_ref, e.message_id, e.status, e.event_id) for e in events] == [
        ("sim-1", "m1", DeliveryStatus.DELIVERED, "e1"), ("sim-2", "m2", DeliveryStatus.FAILED, "e2")]
    assert events[0].occurred_at is not None and events[0].occurred_at.utcoffset() is not None
    assert events[1].provider_code == "SIM-40"
    assert [e.raw for e in events] == body


def test_an_unknown_status_word_is_unknown_not_a_guessed_success(ledger: str) -> None:
    [event] = sim(ledger).parse_callback({}, b'{"ref": "sim-1", "status": "BOUNCED_MAYBE"}')
    assert event.status is DeliveryStatus.UNKNOWN
    assert event.raw == {"ref": "sim-1", "status": "BOUNCED_MAYBE"}


def test_an_inbound_reply_is_parsed_with_its_sender_and_text(ledger: str) -> None:
    [event] = sim(ledger).parse_callback({}, b'{"type": "reply", "from": "+14155550100", "text": "STOP"}')
    assert (event.status, event.reply_from, event.reply_text) == (DeliveryStatus.UNKNOWN, "+14155550100", "STOP")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"status": "DELIVERED", "at": "yesterday"}'])
def test_a_malformed_callback_is_refused_as_invalid_input(ledger: str, body: bytes) -> None:
    with pytest.raises(ValidationError) as caught:
        sim(ledger).parse_callback({}, body)
    assert caught.value.code is Code.INVALID_INPUT


def test_a_callback_with_a_wrong_signature_is_refused_when_a_secret_is_set(ledger: str) -> None:
    provider = sim(ledger, callback_secret="s3cret")
    body = b'{"ref": "sim-1", "status": "DELIVERED"}'
    signed = {k.upper(): v for k, v in sign_callback("s3cret", body).items()}
    assert len(provider.parse_callback(signed, body)) == 1
    assert SIGNATURE_HEADER.upper() in signed
    with pytest.raises(ValidationError):
        provider.parse_callback(sign_callback("other", body), body)


def test_a_due_report_round_trips_through_parse_callback(ledger: str) -> None:
    provider = sim(ledger, dlr_failure_rate=1.0)
    ref = provider.send(msg("m1")).provider_ref
    [row] = pending_reports(ledger, int(time.time() * 1000) + 1)
    [event] = provider.parse_callback({}, json.dumps(report_payload(row)).encode())
    assert (event.provider_ref, event.message_id, event.status, event.provider_code) == (
        ref, "m1", DeliveryStatus.FAILED, "SIM-40")
