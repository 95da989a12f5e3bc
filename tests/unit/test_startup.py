"""Start-up checks of a worker or web receiver: provider options validated, the simulator announced."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

import pytest

from worker.settings import load_settings
from worker.startup import check_at_start

REAL = {"acme": {"driver": "http_sms", "base_url": "https://sms.example/", "api_key": "k"}}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("HEXAVOX_PROVIDERS", "HEXAVOX_DEFAULT_PROVIDER", "HEXAVOX_ENVIRONMENT", "HEXAVOX_DATABASE_URL",
                 "HEXAVOX_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEXAVOX_DATA_DIR", str(tmp_path))


def checked(monkeypatch: pytest.MonkeyPatch, providers: Mapping[str, object] | None, default: str | None) -> str:
    if providers is not None:
        monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps(providers))
    if default is not None:
        monkeypatch.setenv("HEXAVOX_DEFAULT_PROVIDER", default)
    out = io.StringIO()
    check_at_start(load_settings(), out)
    return out.getvalue()


def test_the_default_simulator_is_announced_as_sending_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    printed = checked(monkeypatch, None, None)
    assert printed.count("\n") == 1 and "WARNING" in printed and "simulated" in printed and "NOT sent" in printed


def test_real_providers_start_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    assert checked(monkeypatch, REAL, "acme") == ""


@pytest.mark.parametrize(("providers", "default", "named"), [
    ({"acme": {**REAL["acme"], "apikey": "k"}}, "acme", "unknown options apikey"),
    ({"mail": {"driver": "smtp_email", "host": "smtp.example", "from_address": "not an address"}}, "mail",
     "from_address"),
    ({"acme": {"driver": "carrier_pigeon"}}, "acme", "unknown provider driver"),
    (REAL, "acmee", "HEXAVOX_DEFAULT_PROVIDER 'acmee' is not configured"),
    ({"sim": {"driver": "simulated", "reject_rat": "0.1"}}, "sim", "reject_rat"),
])
def test_a_bad_provider_configuration_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                           providers: dict[str, object], default: str,
                                                           named: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        out = io.StringIO()
        monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps(providers))
        monkeypatch.setenv("HEXAVOX_DEFAULT_PROVIDER", default)
        check_at_start(load_settings(), out)
    assert stopped.value.code == 2
    assert out.getvalue().count("\n") == 1 and named in out.getvalue() and "configuration error" in out.getvalue()
