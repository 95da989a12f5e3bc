"""Sentry carries the release, the environment and a traces sample rate, with the Celery integration on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk

from worker.observability import init_sentry
from worker.settings import load_settings

from support import RecordingTransport

PHONE = "+18135551234"

@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingTransport]:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.setenv("HEXAVOX_SENTRY_DSN", "http://public@127.0.0.1:9/1")
    monkeypatch.setenv("HEXAVOX_ENVIRONMENT", "staging")
    monkeypatch.setenv("HEXAVOX_RELEASE", "hexavox-worker@1.2.3")
    monkeypatch.setenv("HEXAVOX_SENTRY_TRACES_SAMPLE_RATE", "1.0")
    transport = RecordingTransport()
    assert init_sentry(load_settings(), transport=transport)
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def test_events_and_transactions_carry_release_and_environment_scrubbed(recorder: RecordingTransport) -> None:
    client = sentry_sdk.get_client()
    assert "celery" in client.integrations
    with sentry_sdk.start_transaction(name="hexavox.sms.send.v1", op="queue.task.celery"):
        sentry_sdk.capture_message(f"refused {PHONE}")
    sentry_sdk.flush()
    items = [item.payload.json for envelope in recorder.envelopes for item in envelope.items if item.payload.json]
    kinds = {item.get("type", "event") for item in items}
    assert {"event", "transaction"} <= kinds
    assert {(item["release"], item["environment"]) for item in items} == {("hexavox-worker@1.2.3", "staging")}
    assert PHONE not in repr(items)


def test_the_default_release_is_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEXAVOX_RELEASE", raising=False)
    assert load_settings().release.startswith("hexavox-worker@")


@pytest.mark.parametrize("rate", ["-0.1", "1.5"])
def test_a_sample_rate_outside_0_to_1_is_refused(monkeypatch: pytest.MonkeyPatch, rate: str) -> None:
    from worker.errors import ConfigurationError

    monkeypatch.setenv("HEXAVOX_SENTRY_TRACES_SAMPLE_RATE", rate)
    with pytest.raises(ConfigurationError):
        load_settings()
