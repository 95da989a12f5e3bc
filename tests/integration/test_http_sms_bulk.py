"""The HTTP SMS driver's many-numbers call (seed 000's JSON form), over real HTTP against the fake API.

One request carries every MKT message of the same body, sender and options, each number with its own ``ref`` (our
message id), so each outcome is read from its own result and each message can be looked up alone. An answer that
says nothing per number, or no answer at all, leaves every message in it AMBIGUOUS: reconcile settles each by its
reference and nothing is ever sent again. The last tests run the batch dispatch path and reconcile on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from providers.base import OutboundMessage, ProviderRef, SendOutcome, SendResult
from providers.http_sms import HexaSmsProvider, HttpSmsProvider
from providers.http_sms_shapes import HEXA_BULK_LIMIT, hexa_ref
from schema.states import Channel
from worker.catalogue import Code
from worker.settings import load_settings

from factories import Tenant, make_merchant, make_tenant, opt, sms
from provider_servers import API_KEY, FakeApi, Recorded, free_port, hang, http_error, reject, running_fake_api

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeApi]:
    with running_fake_api() as fake:
        yield fake


@pytest.fixture
def api(server: FakeApi) -> Iterator[FakeApi]:
    yield server
    server.bulk_answer = "nodes"


@pytest.fixture(scope="module")
def driver(server: FakeApi) -> Iterator[HttpSmsProvider]:
    settings = dataclasses.replace(load_settings(), provider_timeout=0.5)
    provider = HttpSmsProvider.from_options("hexa-sms", {"base_url": server.url("hexa"), "api_key": API_KEY,
                                                         "sender": "HEXAVX"}, settings)
    yield provider
    provider.close()


def messages(count: int, **changes: Any) -> list[OutboundMessage]:
    return [dataclasses.replace(OutboundMessage(message_id=str(uuid.uuid4()), channel=Channel.SMS, message_type="MKT",
                                                recipient=f"+4915113{next(_numbers):06d}", body="Sale: 20% off"),
                                **changes) for _ in range(count)]


def posts(api: FakeApi, since: int) -> list[Recorded]:
    return [r for r in api.requests[since:] if r.method == "POST"]


def send_many(driver: HttpSmsProvider, batch: list[OutboundMessage]) -> list[SendResult]:
    assert isinstance(driver, HexaSmsProvider)
    return driver.send_many(batch)


def test_one_request_carries_every_number_each_with_its_own_reference(api: FakeApi, driver: HttpSmsProvider) -> None:
    batch, before = messages(5, options={"ref": "spring7", "unicode": "AUTO"}), len(api.requests)
    results = send_many(driver, batch)
    [request] = posts(api, before)
    payload = request.json()
    assert request.headers["content-type"].startswith("application/json") and request.path == "/hexa/messages"
    assert [node["ref"] for node in payload["sms"]] == [hexa_ref(m.message_id) for m in batch]
    assert [node["to"] for node in payload["sms"]] == [m.recipient for m in batch]
    assert {k: payload[k] for k in ("body", "sender", "type", "ref1", "unicode")} == {
        "body": "Sale: 20% off", "sender": "HEXAVX", "type": "MKT", "ref1": "spring7", "unicode": "AUTO"}
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * 5
    assert len({r.provider_ref for r in results}) == 5
    # each message is found on its own, by the provider's reference and by our id alone
    for message, result in zip(batch, results, strict=True):
        assert driver.fetch_status(ProviderRef(message.message_id, result.provider_ref)).provider_ref == \
            result.provider_ref
        assert driver.fetch_status(ProviderRef(message.message_id)).provider_ref == result.provider_ref
        assert result.raw["body"]["ref"] == hexa_ref(message.message_id)  # its own part of the answer, no other


def test_each_number_gets_its_own_outcome(api: FakeApi, driver: HttpSmsProvider) -> None:
    batch, before = messages(4), len(api.requests)
    api.script(batch[1].recipient, reject("E406"))
    results = send_many(driver, batch)
    assert len(posts(api, before)) == 1
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED, SendOutcome.REJECTED, SendOutcome.ACCEPTED,
                                            SendOutcome.ACCEPTED]
    assert (results[1].error_code, results[1].provider_code) == (Code.INVALID_MOBILE_NUMBER, "E406")


def test_only_messages_that_share_every_field_share_a_request(api: FakeApi, driver: HttpSmsProvider) -> None:
    same = messages(3)
    other_body = messages(2, body="Other text")
    other_sender = messages(2, sender="GYMB")
    txn, otp = messages(1, message_type="TXN"), messages(1, message_type="OTP")
    many = messages(HEXA_BULK_LIMIT + 1, body="For the many")
    before = len(api.requests)
    batch = [*same, *other_body, *other_sender, *txn, *otp, *many]
    results = send_many(driver, batch)
    requests = posts(api, before)
    sizes = sorted(len(r.json()["sms"]) if "sms" in r.body.decode() else 1 for r in requests)
    # TXN and OTP go alone as forms; the MKT ones by identical fields, at most HEXA_BULK_LIMIT numbers each
    assert sizes == [1, 1, 1, 2, 2, 3, HEXA_BULK_LIMIT]
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * len(batch)
    assert all(len(api.sends_to(m.recipient)) == 1 for m in batch)


def test_an_answer_without_per_number_results_leaves_every_message_ambiguous_until_looked_up(
        api: FakeApi, driver: HttpSmsProvider) -> None:
    api.bulk_answer = "bare"
    batch, before = messages(3), len(api.requests)
    results = send_many(driver, batch)
    assert len(posts(api, before)) == 1
    assert [r.outcome for r in results] == [SendOutcome.AMBIGUOUS] * 3
    # the provider did take them: each lookup by our reference settles it, no resend needed
    found = [driver.fetch_status(ProviderRef(m.message_id)) for m in batch]
    assert all(f.provider_ref for f in found) and len({f.provider_ref for f in found}) == 3


@pytest.mark.parametrize("script", [hang(), http_error(500), http_error(502)], ids=["hang", "500", "502"])
def test_a_lost_or_failed_answer_leaves_every_message_ambiguous(api: FakeApi, driver: HttpSmsProvider,
                                                                script: Any) -> None:
    batch, before = messages(3), len(api.requests)
    api.script(batch[2].recipient, script)
    results = send_many(driver, batch)
    assert len(posts(api, before)) == 1
    assert [r.outcome for r in results] == [SendOutcome.AMBIGUOUS] * 3


@pytest.mark.parametrize(("code", "outcome", "error_code"), [
    ("E401", SendOutcome.REJECTED, Code.SMS_TOO_LONG),  # a shared field refused: each message alone meets it too
    ("E405", SendOutcome.UNAVAILABLE, None),  # the grouping refused: nothing sent, each may go alone
    ("E403", SendOutcome.AMBIGUOUS, None),  # "something went wrong at our end": may have been queued
    ("E999", SendOutcome.AMBIGUOUS, None),  # a code no table knows
])
def test_a_refusal_of_the_whole_request_settles_each_message_as_the_bulk_table_says(
        api: FakeApi, driver: HttpSmsProvider, code: str, outcome: SendOutcome, error_code: Code | None) -> None:
    api.bulk_answer = code
    results = send_many(driver, messages(3))
    assert [(r.outcome, r.error_code, r.provider_code) for r in results] == [(outcome, error_code, code)] * 3


def test_a_refused_connection_leaves_every_message_unavailable(server: FakeApi) -> None:
    settings = dataclasses.replace(load_settings(), provider_timeout=0.5)
    down = HttpSmsProvider.from_options("down", {"base_url": f"http://127.0.0.1:{free_port()}", "api_key": "k"},
                                        settings)
    results = send_many(down, messages(3))
    down.close()
    assert [r.outcome for r in results] == [SendOutcome.UNAVAILABLE] * 3


def test_the_panel_shape_has_no_many_numbers_call(server: FakeApi) -> None:
    settings = load_settings()
    panel = HttpSmsProvider.from_options("panel", {"base_url": server.url("panel"), "api_key": API_KEY,
                                                   "shape": "panel"}, settings)
    panel.close()
    assert getattr(panel, "send_many", None) is None


# -- the batch dispatch path and reconcile, on PostgreSQL ---------------------------------------------------------


@pytest.fixture
def hexa_tenant(hexavox_env: dict[str, str], server: FakeApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenant]:
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps({"hexa": {"driver": "http_sms", "base_url": server.url("hexa"),
                                                                 "api_key": API_KEY, "sender": "HEXAVX"}}))
    monkeypatch.setenv("HEXAVOX_DEFAULT_PROVIDER", "hexa")
    reset_settings()
    reset_providers()
    tenant = make_tenant()
    make_merchant(tenant)
    yield tenant
    server.bulk_answer = "nodes"
    reset_providers()


def queued_mkt(tenant: Tenant, count: int) -> list[str]:
    from worker.runner import run_send_job

    ids = []
    for _ in range(count):  # one job each: a job for many MKT numbers is a campaign, dispatched in its chunks
        number = f"+1813556{next(_numbers):04d}"
        opt(tenant, "gym-a", "SMS", number)
        outcome = run_send_job("hexavox.sms.send.v1", sms(tenant, to=number, type="MKT", body="Sale today"),
                               str(uuid.uuid4()))
        ids += [mid for mid, _, _ in outcome.to_dispatch]
    assert len(ids) == count
    return ids


def states(ids: list[str]) -> list[str]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        rows = session.execute(select(Message.id, Message.status).where(Message.id.in_(ids)))
        found = {mid: status for mid, status in rows}
    return [found[mid] for mid in ids]


def dispatch(ids: list[str]) -> dict[str, int]:
    from worker.policy.dispatch_batch import dispatch_batch
    from worker.sending import provider_bulk_sender, provider_sender
    from worker.settings import get_settings

    settings = get_settings()
    outcome = dispatch_batch(ids, settings, provider_sender(settings), redelivered=False,
                             bulk=provider_bulk_sender(settings))
    return {step: count for step, count in outcome.steps.items() if count}


def test_the_batch_path_sends_a_batch_in_one_request(hexa_tenant: Tenant, server: FakeApi) -> None:
    ids = queued_mkt(hexa_tenant, 6)
    before = len(server.requests)
    assert dispatch(ids) == {"SENT": 6}
    assert len(posts(server, before)) == 1 and states(ids) == ["SENT"] * 6


def test_an_ambiguous_batch_is_reconciled_one_by_one_and_never_sent_again(hexa_tenant: Tenant,
                                                                         server: FakeApi) -> None:
    from providers.registry import get_provider
    from worker.policy.reconcile import sweep
    from worker.settings import get_settings

    server.bulk_answer = "bare"
    ids = queued_mkt(hexa_tenant, 4)
    before = len(server.requests)
    assert dispatch(ids) == {"AMBIGUOUS": 4}
    assert states(ids) == ["AMBIGUOUS"] * 4
    counts, resend = sweep(get_settings(), lambda names: [get_provider(n, get_settings()) for n in names])
    assert (counts.settled, resend) == (4, []) and states(ids) == ["SENT"] * 4
    assert len(posts(server, before)) == 1  # the one bulk request; lookups are GETs, nothing was sent again
    assert dispatch(ids) == {"SKIPPED": 4}
    assert len(posts(server, before)) == 1
