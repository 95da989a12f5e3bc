"""Settings: embedded defaults with no environment, and refusals of unsafe combinations at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.settings import load_settings

_ALL = ["HEXAVOX_DATABASE_URL", "HEXAVOX_BROKER_URL", "HEXAVOX_REDIS_URL", "HEXAVOX_RESULT_BACKEND",
        "HEXAVOX_ENVIRONMENT", "HEXAVOX_VISIBILITY_TIMEOUT", "HEXAVOX_TASK_TIME_LIMIT", "HEXAVOX_PROVIDERS",
        "HEXAVOX_CRASH_POINT", "HEXAVOX_ALLOW_PRIVATE_CALLBACKS"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in _ALL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEXAVOX_DATA_DIR", str(tmp_path))


def test_no_environment_gives_the_embedded_mode() -> None:
    settings = load_settings()
    assert settings.embedded
    assert settings.database_url.startswith("sqlite:///") and settings.broker_url == "filesystem://"
    assert settings.result_backend == "db+" + settings.database_url
    assert settings.visibility_timeout > settings.task_time_limit
    assert settings.providers == {"simulated": {"driver": "simulated"}}


PRODUCTION = {"HEXAVOX_ENVIRONMENT": "production", "HEXAVOX_DATABASE_URL": "postgresql://hx:pw@db/hx",
              "HEXAVOX_BROKER_URL": "redis://:pw@redis:6379/0", "HEXAVOX_REDIS_URL": "redis://:pw@redis:6379/1",
              "HEXAVOX_SERVICE_KEY": "s" * 32}

refusals = (
    ({"HEXAVOX_VISIBILITY_TIMEOUT": "60", "HEXAVOX_TASK_TIME_LIMIT": "60"}, "VISIBILITY_TIMEOUT"),
    ({"HEXAVOX_TASK_TIME_LIMIT": "soon"}, "integer"),
    ({"HEXAVOX_PROVIDERS": "[1, 2]"}, "HEXAVOX_PROVIDERS"),
    ({"HEXAVOX_PROVIDERS": "{not json"}, "JSON"),
    ({"HEXAVOX_ALLOW_PRIVATE_CALLBACKS": "maybe"}, "boolean"),
    ({**PRODUCTION, "HEXAVOX_DATABASE_URL": ""}, "PostgreSQL"),
    ({**PRODUCTION, "HEXAVOX_BROKER_URL": "redis://redis:6379/0"}, "HEXAVOX_BROKER_URL"),
    ({**PRODUCTION, "HEXAVOX_REDIS_URL": "redis://redis:6379/1"}, "HEXAVOX_REDIS_URL"),
    ({**PRODUCTION, "HEXAVOX_REDIS_URL": ""}, "throughput limits"),
    ({**PRODUCTION, "HEXAVOX_CRASH_POINT": "after_provider_call"}, "CRASH_POINT"),
    ({**PRODUCTION, "HEXAVOX_ALLOW_PRIVATE_CALLBACKS": "1"}, "ALLOW_PRIVATE_CALLBACKS"),
    ({**PRODUCTION, "HEXAVOX_SERVICE_KEY": ""}, "HEXAVOX_SERVICE_KEY"),
    ({**PRODUCTION, "HEXAVOX_SERVICE_KEY": "short"}, "HEXAVOX_SERVICE_KEY"),
    ({"HEXAVOX_ENVELOPE_MAX_AGE": "5"}, "ENVELOPE_MAX_AGE"),
)


@pytest.mark.parametrize(("environment", "named"), refusals)
def test_unsafe_settings_are_refused_at_start_up(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str],
                                                 named: str) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_production_with_credentials_or_tls_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**PRODUCTION, "HEXAVOX_BROKER_URL": "rediss://redis:6380/0"}.items():
        monkeypatch.setenv(name, value)
    assert not load_settings().embedded


def test_reconfiguring_away_from_the_embedded_broker_forgets_its_transport(monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    """A process that started embedded and then points at Redis (make bench) must not keep publishing to files."""
    from celery import Celery

    from worker.celeryconfig import TRANSPORT_PATH, celery_config

    monkeypatch.setenv("HEXAVOX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEXAVOX_BROKER_URL", raising=False)
    app = Celery("t", set_as_current=False)
    app.conf.update(celery_config(load_settings()))
    assert app.conf.broker_transport == TRANSPORT_PATH
    monkeypatch.setenv("HEXAVOX_BROKER_URL", "redis://127.0.0.1:6379/9")
    app.conf.update(celery_config(load_settings()))
    assert app.conf.broker_transport is None
    assert app.connection_for_write().transport.driver_type == "redis"
