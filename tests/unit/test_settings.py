"""Settings: embedded defaults with no environment, and refusals of unsafe combinations at start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.settings import load_settings

_ALL = ["HEXAVOX_DATABASE_URL", "HEXAVOX_BROKER_URL", "HEXAVOX_REDIS_URL", "HEXAVOX_RESULT_BACKEND",
        "HEXAVOX_ENVIRONMENT", "HEXAVOX_VISIBILITY_TIMEOUT", "HEXAVOX_TASK_TIME_LIMIT", "HEXAVOX_PROVIDERS",
        "HEXAVOX_CRASH_POINT", "HEXAVOX_ALLOW_PRIVATE_CALLBACKS", "HEXAVOX_DEFAULT_PROVIDER",
        "HEXAVOX_NEW_MERCHANT_LIMITS"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in _ALL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEXAVOX_DATA_DIR", str(tmp_path))


def test_no_environment_gives_the_embedded_mode() -> None:
    settings = load_settings()
    assert settings.embedded
    assert settings.database_url.startswith("sqlite:///") and settings.broker_url == "filesystem://"
    assert settings.result_backend == "db+" + settings.database_url  # SQLite: unchanged
    assert settings.visibility_timeout > settings.task_time_limit
    assert settings.providers == {"simulated": {"driver": "simulated"}}


SIGNED_PROVIDER = {"sms": {"driver": "http_sms", "base_url": "https://sms.example", "api_key": "k",
                           "webhook_secret": "s"}}
PRODUCTION = {"HEXAVOX_ENVIRONMENT": "production", "HEXAVOX_DATABASE_URL": "postgresql://hx:pw@db/hx",
              "HEXAVOX_BROKER_URL": "redis://:pw@redis:6379/0", "HEXAVOX_REDIS_URL": "redis://:pw@redis:6379/1",
              "HEXAVOX_SERVICE_KEY": "s" * 32, "HEXAVOX_PROVIDERS": json.dumps(SIGNED_PROVIDER),
              "HEXAVOX_RESULT_BACKEND": "redis://:pw@redis:6379/2",
              "HEXAVOX_DEFAULT_PROVIDER": "sms"}

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
    # inbound reports must be signed in production, and the simulator is for tests and demos
    ({**PRODUCTION, "HEXAVOX_PROVIDERS": ""}, "simulated driver"),
    # client services get the result backend's URL: never the main database's
    ({**PRODUCTION, "HEXAVOX_RESULT_BACKEND": ""}, "RESULT_BACKEND"),  # the default: db+ the database
    ({**PRODUCTION, "HEXAVOX_RESULT_BACKEND": "db+postgresql+psycopg://hx:pw@db/hx"}, "RESULT_BACKEND"),
    ({**PRODUCTION, "HEXAVOX_PROVIDERS": json.dumps({**SIGNED_PROVIDER, "voice": {
        "driver": "http_voice", "base_url": "https://voice.example", "api_key": "k"}})},
     "'voice' has no webhook_secret"),
    ({**PRODUCTION, "HEXAVOX_PROVIDERS": json.dumps({"sim": {"driver": "simulated", "callback_secret": "s"}})},
     "simulated driver"),
    ({**PRODUCTION, "HEXAVOX_PROVIDERS": "", "HEXAVOX_DEFAULT_PROVIDER": ""}, "refuses the simulated provider"),
    ({**PRODUCTION, "HEXAVOX_PROVIDERS": '{"acme": {"driver": "http_sms", "webhook_secret": "s"}, '
                                         '"fake": {"driver": "simulated"}}'},
     r"simulated provider \(fake\)"),
    ({"HEXAVOX_NEW_MERCHANT_LIMITS": '{"SMS": -1}'}, "HEXAVOX_NEW_MERCHANT_LIMITS"),
    ({"HEXAVOX_NEW_MERCHANT_LIMITS": '{"FAX": 10}'}, "HEXAVOX_NEW_MERCHANT_LIMITS"),
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

    from worker.celeryconfig import celery_config
    from worker.file_broker import TRANSPORT_PATH

    monkeypatch.setenv("HEXAVOX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEXAVOX_BROKER_URL", raising=False)
    app = Celery("t", set_as_current=False)
    app.conf.update(celery_config(load_settings()))
    assert app.conf.broker_transport == TRANSPORT_PATH
    monkeypatch.setenv("HEXAVOX_BROKER_URL", "redis://127.0.0.1:6379/9")
    app.conf.update(celery_config(load_settings()))
    assert app.conf.broker_transport is None
    assert app.connection_for_write().transport.driver_type == "redis"


@pytest.mark.parametrize("database_url", ["postgresql://hx:pw@db/hx", "postgres://hx:pw@db/hx",
                                          "postgresql+psycopg://hx:pw@db/hx"])
def test_the_default_result_backend_of_a_postgresql_database_uses_psycopg_3(monkeypatch: pytest.MonkeyPatch,
                                                                            database_url: str) -> None:
    from sqlalchemy import create_engine

    # Given a PostgreSQL database URL and no HEXAVOX_RESULT_BACKEND
    monkeypatch.setenv("HEXAVOX_DATABASE_URL", database_url)
    backend = load_settings().result_backend
    # Then the documented default (db+ the database URL) names psycopg 3, and SQLAlchemy can load its driver
    # (a bare postgresql:// means psycopg2, which is not installed: the backend failed at the first result)
    assert backend == "db+postgresql+psycopg://hx:pw@db/hx"
    create_engine(backend.removeprefix("db+")).dispose()


def test_an_explicit_postgresql_result_backend_uses_psycopg_3_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEXAVOX_RESULT_BACKEND", "db+postgresql://hx:pw@db/results")
    assert load_settings().result_backend == "db+postgresql+psycopg://hx:pw@db/results"


def test_new_merchant_limits_default_to_non_zero_amounts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().new_merchant_limits == {"SMS": 100, "VOICE": 10, "EMAIL": 100}
    monkeypatch.setenv("HEXAVOX_NEW_MERCHANT_LIMITS", '{"VOICE": 0}')
    assert load_settings().new_merchant_limits == {"SMS": 100, "VOICE": 0, "EMAIL": 100}
