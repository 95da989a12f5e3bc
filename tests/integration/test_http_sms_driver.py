"""The HTTP SMS driver against a real local server speaking both seed API styles (hexa = seed 000, panel = 004)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from providers.base import DeliveryStatus, OutboundMessage, ProviderRef, SendOutcome, SendResult
from providers.http_common import (
    make_client,
    outcome_for_error,
    outcome_for_http_status,
    signed_webhook_headers,
)
from providers.http_sms import HttpSmsProvider, hexa_ref, message_id_from_ref
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


@pytest.fixture(params=["hexa", "panel"])
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(settings: Settings, base_url: str, shape: str, **extra: Any) -> HttpSmsProvider:
    options: dict[str, Any] = {"base_url": base_url, "api_key": API_KEY, "shape": shape, "sender": "HEXAVX", **extra}
    return HttpSmsProvider.from_options(f"{shape}-sms", options, settings)


@pytest.fixture
def provider(api: FakeApi, settings: Settings, shape: str) -> Iterator[HttpSmsProvider]:
    driver = make(settings, api.url(shape), shape)
    yield driver
    driver.close()


def message(**changes: Any) -> OutboundMessage:
    base = OutboundMessage(message_id=str(uuid.uuid4()), channel=Channel.SMS, message_type="TXN",
                           recipient=f"+4915112{next(_numbers):06d}", body="Your code is 1234")
    return dataclasses.replace(base, **changes)


# -- request mapping ------------------------------------------------------------------------------------------


def test_hexa_send_posts_the_seed_000_form_with_our_id_as_ref(api: FakeApi, settings: Settings) -> None:
    driver = make(settings, api.url("hexa"), "hexa", dlr_url="https://hooks.example.com/dlr/hexa")
    msg = message(options={"ref": "campaign7", "unicode": "AUTO"})

    result = driver.send(msg)

    assert result.outcome is SendOutcome.ACCEPTED and result.provider_ref
    [request] = api.sends_to(msg.recipient)
    assert request.headers["api-key"] == API_KEY
    assert request.form() == {"to": msg.recipient, "body": msg.body, "sender": "HEXAVX", "type": "TXN",
                              "ref": uuid.UUID(msg.message_id).hex, "ref1": "campaign7", "unicode": "AUTO",
                              "dlrurl": "https://hooks.example.com/dlr/hexa"}
    assert result.raw["http_status"] == 202 and result.raw["body"]["code"] == "E100"
    assert result.provider_code == "E100"


#: Every SMS option intake stores on a message, with the values it stores them as (flags as booleans).
STORED_OPTIONS: dict[str, Any] = {
    "unicode": "AUTO", "flash": True, "ref": "tag7", "ref1": "branch2", "ref2": "desk9", "port": 5000,
    "duplicate": True, "campaignId": "spring26", "campaignName": "Spring26", "dlrUrl": "https://m.example.com/dlr",
    "encoding": "GSM7", "segments": 1,
}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, {"ref1": "tag7", "unicode": "AUTO", "flash": "1", "port": "5000", "duplicate": "1"}),
    ({"flash": False, "unicode": "1", "duplicate": False, "port": None, "ref": None},
     {"unicode": "1", "flash": "0"}),
    ({"flash": 1, "unicode": "0"}, {"ref1": "tag7", "unicode": "0", "flash": "1", "port": "5000",
                                    "duplicate": "1"}),
], ids=["all-set", "flags-off", "int-flags"])
def test_hexa_sends_every_option_in_the_seed_000_format(api: FakeApi, settings: Settings, changes: dict[str, Any],
                                                        expected: dict[str, str]) -> None:
    """The fake API refuses any parameter outside seed 000's formats (flash "True" is E606) or unknown to it (E413)."""
    driver = make(settings, api.url("hexa"), "hexa")
    msg = message(options={**STORED_OPTIONS, **changes})

    result = driver.send(msg)

    assert result.outcome is SendOutcome.ACCEPTED, result.raw
    [request] = api.sends_to(msg.recipient)
    assert request.form() == {"to": msg.recipient, "body": msg.body, "sender": "HEXAVX", "type": "TXN",
                              "ref": uuid.UUID(msg.message_id).hex, **expected}


@pytest.mark.parametrize(("field", "value", "code"), [
    ("flash", "True", "E606"), ("unicode", "auto-ish", "E604"), ("port", "80a", "E603"), ("duplicate", "yes", "E605"),
    ("ref1", "tag-7", "E609"), ("campaign", "x", "E413"),
])
def test_fake_hexa_refuses_what_the_seed_refuses(api: FakeApi, field: str, value: str, code: str) -> None:
    """The checks above can fail: what main sent before (flash=True) is refused E606 by a seed-000 API."""
    form = {"to": "+4915112000001", "body": "hi", "sender": "HEXAVX", "type": "TXN", "ref": "abc", field: value}

    response = httpx.post(f"{api.url('hexa')}/messages", data=form, headers={"api-key": API_KEY})

    assert response.json()["code"] == code


def test_panel_send_posts_the_seed_004_json_with_authkey(api: FakeApi, settings: Settings) -> None:
    driver = make(settings, api.url("panel"), "panel")
    msg = message(sender="OTHER")

    result = driver.send(msg)

    assert result.outcome is SendOutcome.ACCEPTED
    [request] = api.sends_to(msg.recipient)
    assert request.headers["authkey"] == API_KEY and request.query == {"response": "json"}
    assert request.json() == {"mobiles": msg.recipient.lstrip("+"), "message": msg.body, "sender": "OTHER",
                              "clientRef": msg.message_id, "route": "4"}
    assert result.provider_ref == result.raw["body"]["message"]


def test_panel_send_carries_the_configured_route_dlt_ids_and_flow(api: FakeApi, settings: Settings) -> None:
    driver = make(settings, api.url("panel"), "panel", route="1", dlt_entity_id=" 1201159100000000001 ",
                  dlt_template_id="1207161000000000002", flow_id="flow-approved")
    msg = message(recipient=f"+9198{next(_numbers):08d}")

    result = driver.send(msg)

    assert result.outcome is SendOutcome.ACCEPTED
    [request] = api.sends_to(msg.recipient)
    assert request.json() == {"mobiles": msg.recipient.lstrip("+"), "message": msg.body, "sender": "HEXAVX",
                              "clientRef": msg.message_id, "route": "1", "dltEntityId": "1201159100000000001",
                              "dltTemplateId": "1207161000000000002", "flowId": "flow-approved"}


DLT = {"dlt_entity_id": "1201159100000000001", "dlt_template_id": "1207161000000000002"}
#: options, recipient prefix -> what the fake panel answers, and what that becomes
PANEL_FIELD_CASES: tuple[tuple[dict[str, str], str, str, SendOutcome, Code | None], ...] = (
    ({}, "+91", "203", SendOutcome.REJECTED, Code.INVALID_SENDER_PATTERN),
    ({"dlt_entity_id": DLT["dlt_entity_id"]}, "+91", "211", SendOutcome.REJECTED, Code.PROVIDER_REJECTED),
    ({"route": "9", **DLT}, "+91", "210", SendOutcome.UNAVAILABLE, None),
    ({"flow_id": "no-such-flow"}, "+49", "400", SendOutcome.REJECTED, Code.PROVIDER_REJECTED),
    ({"flow_id": "flow-pending"}, "+49", "401", SendOutcome.REJECTED, Code.PROVIDER_REJECTED),
    ({"flow_id": "flow-disabled"}, "+49", "403", SendOutcome.REJECTED, Code.PROVIDER_REJECTED),
)


@pytest.mark.parametrize(("options", "prefix", "code", "outcome", "error_code"), PANEL_FIELD_CASES)
def test_panel_refuses_missing_or_wrong_fields_with_its_codes(
        api: FakeApi, settings: Settings, options: dict[str, str], prefix: str, code: str, outcome: SendOutcome,
        error_code: Code | None) -> None:
    driver = make(settings, api.url("panel"), "panel", **options)
    msg = message(recipient=f"{prefix}98{next(_numbers):08d}")

    result = driver.send(msg)

    assert (result.outcome, result.error_code, result.provider_code) == (outcome, error_code, code)
    assert len(api.sends_to(msg.recipient)) == 1


# -- response and error mapping -------------------------------------------------------------------------------

R, U, A = SendOutcome.REJECTED, SendOutcome.UNAVAILABLE, SendOutcome.AMBIGUOUS
HEXA_CASES = (  # seed 000 code -> outcome, catalogue code
    ("E406", R, Code.INVALID_MOBILE_NUMBER), ("E401", R, Code.SMS_TOO_LONG), ("E602", R, Code.SENDER_REQUIRED),
    ("E403", A, None), ("E103", A, None), ("E623", U, None), ("E102", U, None),
    ("E407", R, Code.SMS_NODES_REQUIRED), ("E408", R, Code.SMS_NODE_TO_REQUIRED), ("E409", R, Code.TOO_MANY_SMS_NODES),
    ("E411", R, Code.SMS_NODE_TO_EMPTY), ("E412", R, Code.BODY_REQUIRED_IN_NODE_OR_GLOBAL),
    ("E603", R, Code.PROVIDER_REJECTED), ("E605", R, Code.PROVIDER_REJECTED), ("E610", R, Code.INVALID_REF),
    ("E612", R, Code.PROVIDER_REJECTED), ("E613", R, Code.LIST_ID_REQUIRED), ("E614", R, Code.LIST_SEND_NOT_OTP),
    ("E617", R, Code.PROVIDER_REJECTED), ("E638", R, Code.UPLOAD_REQUIRED), ("E639", R, Code.UPLOAD_NOT_CSV),
    ("E640", R, Code.UPLOAD_TOO_LARGE), ("E641", R, Code.INVALID_SOURCE_LENGTH), ("E642", R, Code.INVALID_SOURCE_TYPE),
    # success words of other calls, and codes no table knows, are never a refusal and never a success
    ("E620", A, None), ("E626", A, None), ("E700", A, None), ("E999", A, None),
)
PANEL_CASES = (  # every seed 004 code -> outcome, catalogue code
    ("101", R, Code.TO_REQUIRED), ("102", R, Code.BODY_EMPTY), ("104", U, None), ("105", U, None), ("201", U, None),
    ("202", R, Code.INVALID_MOBILE_NUMBER), ("203", R, Code.INVALID_SENDER_PATTERN), ("207", U, None),
    ("208", U, None), ("209", U, None), ("210", U, None), ("211", R, Code.PROVIDER_REJECTED), ("301", U, None),
    ("302", U, None), ("303", U, None), ("306", U, None), ("307", R, Code.SCHEDULE_OUT_OF_WINDOW),
    ("308", R, Code.INVALID_CAMPAIGN_NAME), ("309", R, Code.LIST_NOT_FOUND), ("310", R, Code.SMS_TOO_LONG),
    ("311", R, Code.DUPLICATE_WITHIN_WINDOW), ("400", R, Code.PROVIDER_REJECTED), ("401", R, Code.PROVIDER_REJECTED),
    ("402", R, Code.PROVIDER_REJECTED), ("403", R, Code.PROVIDER_REJECTED), ("418", U, None), ("506", A, None),
    ("601", A, None), ("602", U, None), ("603", R, Code.INVALID_SENDER_PATTERN), ("604", R, Code.INVALID_MOBILE_NUMBER),
    ("606", R, Code.SCHEDULE_OUT_OF_WINDOW), ("607", R, Code.INVALID_CAMPAIGN_NAME),
    ("608", R, Code.SCHEDULE_OUT_OF_WINDOW), ("999", A, None),
)
CODE_CASES = [("hexa", *case) for case in HEXA_CASES] + [("panel", *case) for case in PANEL_CASES]


@pytest.mark.parametrize(("shape", "code", "outcome", "error_code"), CODE_CASES)
def test_provider_codes_map_through_the_table(api: FakeApi, provider: HttpSmsProvider, code: str,
                                              outcome: SendOutcome, error_code: Code | None) -> None:
    msg = message()
    api.script(msg.recipient, reject(code))

    result = provider.send(msg)

    assert (result.outcome, result.error_code, result.provider_code) == (outcome, error_code, code)
    assert result.provider_ref is None and result.raw["body"]
    assert len(api.sends_to(msg.recipient)) == 1


@pytest.mark.parametrize(("status", "outcome"), [
    (500, SendOutcome.AMBIGUOUS), (502, SendOutcome.AMBIGUOUS), (503, SendOutcome.AMBIGUOUS),
    (504, SendOutcome.AMBIGUOUS), (429, SendOutcome.UNAVAILABLE),
])
def test_http_errors_without_a_code_are_ambiguous_except_throttling(
        api: FakeApi, provider: HttpSmsProvider, status: int, outcome: SendOutcome) -> None:
    msg = message()
    api.script(msg.recipient, http_error(status))

    result = provider.send(msg)

    assert result.outcome is outcome
    assert result.raw == {"http_status": status, "body": "Internal Server Error"}
    assert len(api.sends_to(msg.recipient)) == 1


def test_wrong_api_key_is_unavailable_not_a_message_refusal(api: FakeApi, settings: Settings, shape: str) -> None:
    driver = make(settings, api.url(shape), shape, api_key="wrong")

    result = driver.send(message())

    assert result.outcome is SendOutcome.UNAVAILABLE


# -- transport failures: never a hidden retry -------------------------------------------------------------------


@pytest.mark.parametrize("script", [hang(), close()], ids=["timeout-after-read", "connection-dropped"])
def test_failure_after_the_request_was_read_is_ambiguous_and_sent_once(
        api: FakeApi, provider: HttpSmsProvider, script: Any) -> None:
    msg = message()
    api.script(msg.recipient, script)

    result = provider.send(msg)

    assert result.outcome is SendOutcome.AMBIGUOUS
    assert result.raw["error"] in {"ReadTimeout", "RemoteProtocolError", "ReadError"}
    assert len(api.sends_to(msg.recipient)) == 1


def test_connection_refused_is_unavailable(settings: Settings, shape: str) -> None:
    driver = make(settings, f"http://127.0.0.1:{free_port()}", shape)

    result = driver.send(message())

    assert isinstance(result, SendResult) and result.outcome is SendOutcome.UNAVAILABLE
    assert result.raw["error"] == "ConnectError"


# -- status lookup --------------------------------------------------------------------------------------------


def test_status_is_found_by_provider_ref_and_by_our_id_alone(api: FakeApi, provider: HttpSmsProvider,
                                                             shape: str) -> None:
    msg = message()
    sent = provider.send(msg)
    assert sent.provider_ref is not None

    before = provider.fetch_status(ProviderRef(msg.message_id, sent.provider_ref))
    api.set_status(sent.provider_ref, "DELIVRD" if shape == "hexa" else "DELIVERED")
    by_our_id = provider.fetch_status(ProviderRef(msg.message_id))

    assert before.status is DeliveryStatus.ACCEPTED
    assert by_our_id.status is DeliveryStatus.DELIVERED and by_our_id.provider_ref == sent.provider_ref
    assert by_our_id.raw["http_status"] == 200


def test_lookup_of_a_message_never_received_is_not_found(provider: HttpSmsProvider) -> None:
    result = provider.fetch_status(ProviderRef(str(uuid.uuid4())))

    assert result.status is DeliveryStatus.NOT_FOUND and result.provider_code in {"E104", "NO_RECORDS"}


def test_unmapped_status_word_is_unknown(api: FakeApi, provider: HttpSmsProvider) -> None:
    sent = provider.send(message())
    assert sent.provider_ref is not None
    api.set_status(sent.provider_ref, "WEIRD")

    assert provider.fetch_status(ProviderRef("x", sent.provider_ref)).status is DeliveryStatus.UNKNOWN


def test_failed_lookup_is_unknown_never_not_found(settings: Settings, shape: str) -> None:
    driver = make(settings, f"http://127.0.0.1:{free_port()}", shape)

    result = driver.fetch_status(ProviderRef(str(uuid.uuid4())))

    assert result.status is DeliveryStatus.UNKNOWN and result.raw["error"] == "ConnectError"


# -- delivery-report webhooks ---------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(("word", "status"), [
    ("DELIVRD", DeliveryStatus.DELIVERED), ("UNDELIV", DeliveryStatus.FAILED), ("EXPIRED", DeliveryStatus.FAILED),
    ("REJECTD", DeliveryStatus.FAILED), ("SOMETHING", DeliveryStatus.UNKNOWN),
])
def test_hexa_dlr_form_maps_status_and_our_id(settings: Settings, word: str, status: DeliveryStatus) -> None:
    driver = make(settings, "http://127.0.0.1:9", "hexa")
    our_id = str(uuid.uuid4())
    fields = {"message_id": "hx-1", "ref": hexa_ref(our_id), "status": word, "delivered_at": "2026-03-01T10:00:00Z"}

    [event] = driver.parse_callback(FORM, urlencode(fields).encode())

    assert event.status is status and event.provider == "hexa-sms"
    assert (event.provider_ref, event.message_id, event.provider_code) == ("hx-1", our_id, word)
    assert event.occurred_at is not None and event.occurred_at.year == 2026
    assert event.raw == fields


def test_hexa_dlr_json_list_gives_one_event_each(settings: Settings) -> None:
    driver = make(settings, "http://127.0.0.1:9", "hexa")
    body = [{"message_id": "a", "status": "DELIVRD"}, {"message_id": "b", "status": "FAILED", "timestamp": 1700000000}]

    events = driver.parse_callback(JSON, json.dumps(body).encode())

    assert [(e.provider_ref, e.status) for e in events] == [("a", DeliveryStatus.DELIVERED),
                                                            ("b", DeliveryStatus.FAILED)]
    assert [e.raw for e in events] == body


def test_panel_dlr_as_form_data_field_keeps_each_report(settings: Settings) -> None:
    driver = make(settings, "http://127.0.0.1:9", "panel")
    reports = [{"requestId": "req-9", "clientRef": "m-1", "report": [
        {"number": "4915112000001", "status": "1", "desc": "DELIVERED", "date": "2026-03-01 10:00:00"}]},
        {"requestId": "req-10", "clientRef": "m-2", "report": [{"number": "4915112000002", "status": "16"}]}]

    events = driver.parse_callback(FORM, urlencode({"data": json.dumps(reports)}).encode())

    assert [(e.provider_ref, e.message_id, e.status) for e in events] == [
        ("req-9", "m-1", DeliveryStatus.DELIVERED), ("req-10", "m-2", DeliveryStatus.FAILED)]
    assert events[0].raw == reports[0]["report"][0]


def test_webhook_signature_is_checked_when_a_secret_is_set(settings: Settings, shape: str) -> None:
    driver = make(settings, "http://127.0.0.1:9", shape, webhook_secret="s3cret")
    body = json.dumps({"message_id": "a", "status": "DELIVRD"}).encode()
    good = {k.lower(): v for k, v in signed_webhook_headers("s3cret", body).items()}

    driver.parse_callback({**JSON, **good}, body)
    stale = signed_webhook_headers("s3cret", body, timestamp=int(time.time()) - 3600)
    for headers in ({**JSON, **good, "x-signature": "0" * 64}, JSON, {**JSON, **stale}):
        with pytest.raises(ValidationError) as refused:
            driver.parse_callback(headers, body)
        assert refused.value.code is Code.WEBHOOK_NOT_AUTHENTIC


def test_unreadable_webhook_body_is_refused(settings: Settings) -> None:
    driver = make(settings, "http://127.0.0.1:9", "hexa")

    with pytest.raises(ValidationError) as refused:
        driver.parse_callback(JSON, b"not json")
    assert refused.value.code is Code.INVALID_INPUT


# -- configuration --------------------------------------------------------------------------------------------


def test_secrets_stay_out_of_repr(settings: Settings) -> None:
    driver = make(settings, "http://127.0.0.1:9", "hexa", webhook_secret="hook-secret")

    assert API_KEY not in repr(driver) and "hook-secret" not in repr(driver)


@pytest.mark.parametrize("options", [
    {"shape": "other"}, {"base_url": ""}, {"timout": 3}, {"shape": "panel", "dlr_url": "https://x.example"},
    {"max_rps": -1}, {"route": "4"}, {"shape": "hexa", "dlt_template_id": "1207161000000000002"},
    {"shape": "panel", "route": " "}, {"shape": "panel", "route": 4}, {"shape": "panel", "flow_id": None},
])
def test_bad_options_fail_at_start_up(settings: Settings, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        HttpSmsProvider.from_options("bad", {"base_url": "http://127.0.0.1:9", "api_key": "k", **options}, settings)


def test_hexa_ref_round_trips_our_uuid_ids() -> None:
    our_id = str(uuid.uuid4())

    assert hexa_ref(our_id).isalnum() and message_id_from_ref(hexa_ref(our_id)) == our_id
    assert hexa_ref("msg-42") == "msg42"


# -- the shared failure classification (providers/http_common.py) ----------------------------------------------

TRANSPORT_CASES = (
    (httpx.ConnectError("refused or DNS failure"), SendOutcome.UNAVAILABLE),
    (httpx.ConnectTimeout("connect"), SendOutcome.UNAVAILABLE),
    (httpx.PoolTimeout("pool"), SendOutcome.UNAVAILABLE),
    (httpx.ReadTimeout("read"), SendOutcome.AMBIGUOUS),
    (httpx.WriteTimeout("write"), SendOutcome.AMBIGUOUS),
    (httpx.RemoteProtocolError("server disconnected"), SendOutcome.AMBIGUOUS),
    (httpx.ReadError("reset"), SendOutcome.AMBIGUOUS),
    (httpx.WriteError("broken pipe"), SendOutcome.AMBIGUOUS),
)


@pytest.mark.parametrize(("error", "outcome"), TRANSPORT_CASES, ids=[type(e).__name__ for e, _ in TRANSPORT_CASES])
def test_transport_errors_are_unavailable_only_when_nothing_left(error: httpx.HTTPError,
                                                                  outcome: SendOutcome) -> None:
    result = outcome_for_error("p", error)

    assert result.outcome is outcome and result.raw["error"] == type(error).__name__


def test_an_unreadable_success_is_not_a_success() -> None:
    assert outcome_for_http_status(200) is SendOutcome.AMBIGUOUS
    assert outcome_for_http_status(599) is SendOutcome.AMBIGUOUS


def test_client_never_retries_or_follows_redirects() -> None:
    client = make_client("http://127.0.0.1:9", 2.0, {})

    assert client.follow_redirects is False
    assert client.timeout == httpx.Timeout(connect=2.0, read=2.0, write=2.0, pool=2.0)
    client.close()
