"""All configuration, read once from environment variables.

Every knob the service has is listed here with its default, so an operator reads one file
to know what can be set. Nothing else in the code reads ``os.environ`` for configuration.
With no environment at all the defaults give the *embedded* mode: SQLite plus a
local-file broker under ``HEXAVOX_DATA_DIR``, no servers needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from worker.errors import ConfigurationError

__all__ = ["Settings", "get_settings", "reset_settings", "result_backend_url", "simulated_providers"]


#: Provider cost in micro-dollars per unit (SMS segment, voice minute, email) when HEXAVOX_UNIT_PRICES is not set.
DEFAULT_UNIT_PRICES: dict[str, int] = {"SMS": 7500, "VOICE": 13000, "EMAIL": 100}
#: What a merchant pays per purchased unit, micro-dollars, when HEXAVOX_CREDIT_PRICES is not set (cost + 30 %).
DEFAULT_CREDIT_PRICES: dict[str, int] = {"SMS": 9750, "VOICE": 16900, "EMAIL": 130}
#: Per-period limits a merchant created without them gets (SMS segments, voice minutes, emails) when
#: HEXAVOX_NEW_MERCHANT_LIMITS is not set: enough to try every channel, small enough that a forgotten
#: merchant cannot run up a bill. Zero would refuse the first message with E808.
DEFAULT_NEW_MERCHANT_LIMITS: dict[str, int] = {"SMS": 100, "VOICE": 10, "EMAIL": 100}
#: Drivers that only pretend to send; production refuses them.
SIMULATED_DRIVERS = frozenset({"simulated"})


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from err


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError as err:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from err


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """The service's configuration. Build it with :func:`get_settings`."""

    #: HEXAVOX_DATA_DIR: where embedded mode keeps its SQLite file and broker folders.
    data_dir: Path
    #: HEXAVOX_DATABASE_URL: SQLAlchemy URL. Default: SQLite file in the data dir.
    database_url: str
    #: HEXAVOX_BROKER_URL: Celery broker. Default: kombu's local-file transport.
    broker_url: str
    #: HEXAVOX_RESULT_BACKEND: where intake answers are kept for client services, which are given this URL. Default:
    #: the database (embedded mode and development); production refuses the main database (use a Redis db of its own).
    result_backend: str
    #: HEXAVOX_REDIS_URL: shared throttles, circuit breakers. Empty: in-process (one host only).
    redis_url: str
    #: HEXAVOX_VISIBILITY_TIMEOUT: seconds before Redis redelivers an unacked task. Must exceed task_time_limit.
    visibility_timeout: int
    #: HEXAVOX_TASK_TIME_LIMIT: hard time limit of one task, seconds.
    task_time_limit: int
    #: HEXAVOX_MAX_DELIVERY_ATTEMPTS: deliveries of one dispatch before it is parked (poison cap, kept in the DB).
    max_delivery_attempts: int
    #: HEXAVOX_DUPLICATE_WINDOW_SECONDS: the duplicate guard's window.
    duplicate_window_seconds: int
    #: HEXAVOX_PROVIDER_TIMEOUT: seconds an HTTP/SMTP provider call may take before the outcome is AMBIGUOUS.
    provider_timeout: float
    #: HEXAVOX_DEFAULT_PROVIDER: provider used when a merchant has no route of its own.
    default_provider: str
    #: HEXAVOX_SENTRY_DSN (or SENTRY_DSN): Sentry project; empty disables Sentry.
    sentry_dsn: str
    #: HEXAVOX_ENVIRONMENT: 'development' or 'production'. Production refuses unsafe settings.
    environment: str
    #: HEXAVOX_ALLOW_PRIVATE_CALLBACKS: test-only: let dlrUrl callbacks reach loopback addresses.
    allow_private_callbacks: bool
    #: HEXAVOX_RECONCILE_MAX_AGE: seconds after which a message with no final outcome becomes EXPIRED.
    reconcile_max_age: int = 86400
    #: HEXAVOX_AMBIGUOUS_GRACE: seconds an AMBIGUOUS message waits before reconcile asks its provider: a lookup
    #: right after the send may not find a message the provider is still taking in, and NOT_FOUND means resend.
    ambiguous_grace: int = 30
    #: HEXAVOX_RECONCILE_MAX_BACKOFF: the longest wait between two lookups of one unsettled message; the wait
    #: doubles from the grace period with each answer that settled nothing.
    reconcile_max_backoff: int = 3600
    #: HEXAVOX_DLR_GRACE: seconds a SENT message waits for its delivery report before reconcile asks.
    dlr_grace: int = 60
    #: HEXAVOX_UNAVAILABLE_GIVE_UP: seconds a message may wait for providers that are unavailable or
    #: open-circuited, from the first such answer, before it fails with E816 (its units returned). Our own
    #: throughput limit never counts: a throttled message waits for its slot.
    unavailable_give_up: int = 600
    #: HEXAVOX_OUTBOX_STALE: seconds a QUEUED message may wait before the relay publishes it again (a publish
    #: that failed). Long, so a backlog that takes a while to drain is not copied over and over; what a Redis
    #: broker lost with its queues is published again at once, whatever its age (see worker.publish).
    outbox_stale: int = 600
    #: HEXAVOX_CRASH_POINT: test-only fault injection; the worker process exits at this named point
    #: (before_provider_call, after_provider_call, after_record, during_intake,
    #: campaign_chunk_before_commit, campaign_chunk_after_commit). Refused in production.
    crash_point: str = ""
    #: HEXAVOX_DB_POOL_SIZE / HEXAVOX_DB_MAX_OVERFLOW: connections kept / extra allowed per process.
    db_pool_size: int = 10
    db_max_overflow: int = 40
    #: HEXAVOX_API_RATE_LIMIT: HTTP API requests per minute for a key without a limit of its own (0: unlimited).
    #: Shared by every API process through HEXAVOX_REDIS_URL (in-process without it: embedded mode).
    api_rate_limit: int = 600
    #: HEXAVOX_API_MAX_BODY_BYTES: larger HTTP API bodies are refused with 413 (E841) before they are parsed.
    api_max_body_bytes: int = 2 * 1024 * 1024
    #: HEXAVOX_API_MAX_RECIPIENTS: recipients one HTTP send may name (``to`` list or ``sms`` nodes); more is E828,
    #: and larger audiences go through a contact list.
    api_max_recipients: int = 1000
    #: HEXAVOX_API_TRUSTED_PROXIES: comma-separated addresses of the TLS proxies in front of ``hexavox api`` whose
    #: X-Forwarded-For is believed (key IP allowlists match the client behind them). Empty: the peer address.
    api_trusted_proxies: str = ""
    #: HEXAVOX_PROVIDERS: JSON object of provider instances, {"name": {"driver": "http_sms", ...options}}.
    #: Default: one instance "simulated" of the simulated driver for every channel.
    providers: dict[str, dict[str, object]] = field(default_factory=dict)
    #: HEXAVOX_SIMULATOR_*: the simulated provider's behaviour (see providers/simulated.py).
    simulator: dict[str, str] = field(default_factory=dict)
    #: HEXAVOX_UNIT_PRICES: JSON object, provider cost per unit in micro-dollars (1 USD = 1_000_000) per channel:
    #: per SMS segment, per voice minute, per email. Channels left out keep their default. Used by usage reports.
    unit_prices: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_UNIT_PRICES))
    #: HEXAVOX_MARKUP_PERCENT: whole percent added on top of the provider cost in usage reports (30 -> cost x 1.30).
    markup_percent: int = 30
    #: HEXAVOX_SERVICE_KEY: the secret the service signs its own internal tasks with (at least 32 characters;
    #: required in production). Every process of one deployment (API, workers, beat, webhook receiver) needs the same
    #: value. Development without it uses a random key kept in the data dir (``service.key``).
    service_key: str = ""
    #: HEXAVOX_ENVELOPE_MAX_AGE: seconds a signed job stays acceptable after it was signed (the replay window). A
    #: replay inside the window is answered from the request already recorded under its id.
    envelope_max_age: int = 86400
    #: HEXAVOX_CAMPAIGN_CHUNK_SIZE: recipients one campaign chunk task expands, checks and writes in one transaction.
    campaign_chunk_size: int = 1000
    #: HEXAVOX_CAMPAIGN_STALL_SECONDS: a RUNNING campaign whose cursor did not move for this long had its chunk
    #: task lost (a broker that lost its queue); the next beat tick starts it again where it stopped.
    campaign_stall_seconds: int = 120
    #: HEXAVOX_CAMPAIGN_PARALLEL_CHUNKS: chunks of one campaign that may be claimed and written at the same time
    #: (each on its own worker thread); 1 runs them one after the other.
    campaign_parallel_chunks: int = 4
    #: HEXAVOX_DISPATCH_BATCH_SIZE: campaign messages one batch dispatch task claims and records together.
    dispatch_batch_size: int = 500
    #: HEXAVOX_DISPATCH_BATCH_THREADS: provider calls a worker process keeps in flight for batch dispatch.
    dispatch_batch_threads: int = 32
    #: HEXAVOX_URGENT_YIELD_MS: the longest a bulk step (campaign chunk claim or write, batch claim, send or record)
    #: waits while an OTP is in flight (worker/urgency.py); 0 (the default) switches the urgency signal off: measured
    #: on 2 cores it cost campaigns 20-30 % of their rate for no clear OTP gain (README, Campaigns). Needs
    #: HEXAVOX_REDIS_URL.
    urgent_yield_ms: int = 0
    #: HEXAVOX_URGENT_BULK_BATCH: while OTPs were seen in the last second, batch dispatch claims, sends and records
    #: its messages this many at a time (yielding between them), so no long bulk statement holds the CPU.
    urgent_bulk_batch: int = 100
    #: HEXAVOX_BULK_RATE: campaign messages a second one worker process sends at most by batch dispatch; 0: no cap.
    bulk_rate: float = 0.0
    #: HEXAVOX_DISPATCH_COALESCE: when a dispatch task of an SMS TXN or MKT message runs while others of its queue
    #: wait QUEUED, it claims its own message and up to this many minus one of the oldest waiting ones in one
    #: statement, and sends and records them as one batch. 0 or 1: one message a task. OTP is never coalesced.
    dispatch_coalesce: int = 50
    #: HEXAVOX_DISPATCH_COALESCE_MIN_AGE: seconds a message must have waited QUEUED before another message's task
    #: may take it, so a shallow queue's fresh messages stay with their own tasks.
    dispatch_coalesce_min_age: float = 2.0
    #: HEXAVOX_INLINE_DISPATCH: an intake job that admitted one OTP or TXN message sends it itself right after
    #: its commit (no second Celery hop); the outbox row still guarantees dispatch if it dies in between.
    inline_dispatch: bool = True
    #: HEXAVOX_LOG_FORMAT: 'text' (one human-readable line per record) or 'json' (JSON lines for a log shipper).
    log_format: str = "text"
    #: HEXAVOX_METRICS_PORT: port of the Prometheus endpoint a worker or beat process serves; 0 switches it off.
    metrics_port: int = 0
    #: HEXAVOX_METRICS_MAX_MERCHANTS: merchants with the least units left that get per-merchant balance gauges
    #: (bounds the series count whatever the number of merchants).
    metrics_max_merchants: int = 20
    #: HEXAVOX_RELEASE: the release Sentry events carry. Default: hexavox-worker@<installed version>.
    release: str = ""
    #: HEXAVOX_SENTRY_TRACES_SAMPLE_RATE: share of tasks and requests traced in Sentry (0 to 1).
    sentry_traces_sample_rate: float = 0.0
    #: HEXAVOX_CREDIT_PRICES: JSON object, the least a merchant pays per purchased unit, micro-dollars, per channel.
    #: A billing upgrade's amountCents must cover units x price (rounded up to the cent), so units cannot be bought
    #: for less than they cost.
    credit_prices: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CREDIT_PRICES))
    #: HEXAVOX_PAYMENT_WEBHOOK_SECRET: the ``whsec_`` secret the payment side signs its webhook with (Standard
    #: Webhooks). Empty: the payment webhook is off and only the operator command confirms payments.
    payment_webhook_secret: str = ""
    #: HEXAVOX_CALLBACK_PORTS: comma-separated ports a dlrUrl may name (its scheme's default when it names none).
    callback_ports: frozenset[int] = frozenset({80, 443})
    #: HEXAVOX_MAX_RECIPIENTS: most recipients one send job's ``to`` may list (E828); larger audiences go in a list.
    max_recipients: int = 1000
    #: HEXAVOX_MAX_PAYLOAD_BYTES: largest send job, in bytes of JSON (E829), checked before anything else.
    max_payload_bytes: int = 640 * 1024
    #: HEXAVOX_MIGRATION_DATABASE_URL: the schema owner's URL, used only by migrations (``hexavox db upgrade``).
    #: Default: HEXAVOX_DATABASE_URL. In production workers and the API connect as a runtime role with row rights only.
    migration_database_url: str = ""
    #: HEXAVOX_RUNTIME_ROLE: the PostgreSQL role of HEXAVOX_DATABASE_URL; ``hexavox db upgrade`` grants it DML on
    #: every table (worker/db_roles.py). Empty: no grants (one role for everything, development).
    runtime_role: str = ""
    #: HEXAVOX_WEBHOOK_TOLERANCE: seconds a signed webhook's timestamp may differ from our clock (replay window).
    webhook_tolerance: int = 300
    #: HEXAVOX_NEW_MERCHANT_LIMITS: JSON object, the per-period limits of a merchant created without them
    #: ({"SMS": 100, "VOICE": 10, "EMAIL": 100}); channels left out keep their default. An update never uses them.
    new_merchant_limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_NEW_MERCHANT_LIMITS))
    #: HEXAVOX_REGISTRAR: the 10DLC registrar driver brands, campaigns and number assignments go through
    #: (providers/registrars/). Only "simulated" ships so far: it decides as HEXAVOX_REGISTRAR_OPTIONS says.
    registrar: str = "simulated"
    #: HEXAVOX_REGISTRAR_OPTIONS: JSON object, the registrar driver's options (the simulated registrar's decisions
    #: and delay: {"BRAND": "VERIFIED", "CAMPAIGN": "ACTIVE", "ASSIGNMENT": "ASSIGNED", "delaySeconds": 0}).
    registrar_options: dict[str, object] = field(default_factory=dict)
    #: HEXAVOX_REGISTRAR_WEBHOOK_SECRET: the secret the registrar signs its status webhooks with. Empty: webhook off,
    #: decisions arrive by the beat-driven poll only.
    registrar_webhook_secret: str = ""
    #: HEXAVOX_SIP_DOMAIN: the SIP domain agents register to (voice provisioning).
    sip_domain: str = "sip.hexavox.local"
    #: HEXAVOX_VOICE_TOKEN_TTL: seconds a browser-calling token stays valid (60-3600).
    voice_token_ttl: int = 300
    #: HEXAVOX_LOOKUP_CACHE_SECONDS: how long a process may reuse an API key, merchant or route it read, at most
    #: (worker/lookup_cache.py). Every change to them is seen by the next job at once through a generation number
    #: in HEXAVOX_REDIS_URL; this only bounds a change whose notice was lost. 0, or no Redis: read every time.
    lookup_cache_seconds: float = 2.0

    @property
    def embedded(self) -> bool:
        """True when running on SQLite and the local-file broker."""
        return self.database_url.startswith("sqlite") and self.broker_url.startswith("filesystem")

    @property
    def broker_in_dir(self) -> Path:
        return self.data_dir / "broker" / "queue"

    @property
    def broker_processed_dir(self) -> Path:
        return self.data_dir / "broker" / "processed"


def load_settings() -> Settings:
    """Read the environment into a fresh :class:`Settings`."""
    data_dir = Path(_env("HEXAVOX_DATA_DIR", str(Path.cwd() / ".hexavox"))).resolve()
    database_url = _env("HEXAVOX_DATABASE_URL", f"sqlite:///{data_dir / 'hexavox.db'}")
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=_env("HEXAVOX_BROKER_URL", "filesystem://"),
        result_backend=result_backend_url(_env("HEXAVOX_RESULT_BACKEND", _default_result_backend(database_url))),
        redis_url=_env("HEXAVOX_REDIS_URL", ""),
        visibility_timeout=_env_int("HEXAVOX_VISIBILITY_TIMEOUT", 3600),
        task_time_limit=_env_int("HEXAVOX_TASK_TIME_LIMIT", 300),
        max_delivery_attempts=_env_int("HEXAVOX_MAX_DELIVERY_ATTEMPTS", 5),
        duplicate_window_seconds=_env_int("HEXAVOX_DUPLICATE_WINDOW_SECONDS", 10),
        provider_timeout=_env_float("HEXAVOX_PROVIDER_TIMEOUT", 10.0),
        default_provider=_env("HEXAVOX_DEFAULT_PROVIDER", "simulated"),
        sentry_dsn=_env("HEXAVOX_SENTRY_DSN", _env("SENTRY_DSN", "")),
        environment=_env("HEXAVOX_ENVIRONMENT", "development"),
        allow_private_callbacks=_env_bool("HEXAVOX_ALLOW_PRIVATE_CALLBACKS", False),
        providers=_env_providers(),
        reconcile_max_age=_env_int("HEXAVOX_RECONCILE_MAX_AGE", 86400),
        dlr_grace=_env_int("HEXAVOX_DLR_GRACE", 60),
        ambiguous_grace=_env_int("HEXAVOX_AMBIGUOUS_GRACE", 30),
        reconcile_max_backoff=_env_int("HEXAVOX_RECONCILE_MAX_BACKOFF", 3600),
        outbox_stale=_env_int("HEXAVOX_OUTBOX_STALE", 600),
        unavailable_give_up=_env_int("HEXAVOX_UNAVAILABLE_GIVE_UP", 600),
        crash_point=_env("HEXAVOX_CRASH_POINT", ""),
        api_rate_limit=_env_int("HEXAVOX_API_RATE_LIMIT", 600),
        api_max_body_bytes=_env_int("HEXAVOX_API_MAX_BODY_BYTES", 2 * 1024 * 1024),
        api_max_recipients=_env_int("HEXAVOX_API_MAX_RECIPIENTS", 1000),
        api_trusted_proxies=_env("HEXAVOX_API_TRUSTED_PROXIES", ""),
        db_pool_size=_env_int("HEXAVOX_DB_POOL_SIZE", 10),
        db_max_overflow=_env_int("HEXAVOX_DB_MAX_OVERFLOW", 40),
        unit_prices=_env_unit_prices(),
        new_merchant_limits=_env_channel_ints("HEXAVOX_NEW_MERCHANT_LIMITS", DEFAULT_NEW_MERCHANT_LIMITS),
        markup_percent=_env_int("HEXAVOX_MARKUP_PERCENT", 30),
        service_key=_env("HEXAVOX_SERVICE_KEY", ""),
        envelope_max_age=_env_int("HEXAVOX_ENVELOPE_MAX_AGE", 86400),
        campaign_chunk_size=max(1, _env_int("HEXAVOX_CAMPAIGN_CHUNK_SIZE", 1000)),
        campaign_stall_seconds=_env_int("HEXAVOX_CAMPAIGN_STALL_SECONDS", 120),
        campaign_parallel_chunks=max(1, _env_int("HEXAVOX_CAMPAIGN_PARALLEL_CHUNKS", 4)),
        dispatch_batch_size=max(1, _env_int("HEXAVOX_DISPATCH_BATCH_SIZE", 500)),
        dispatch_batch_threads=max(1, _env_int("HEXAVOX_DISPATCH_BATCH_THREADS", 32)),
        urgent_yield_ms=max(0, _env_int("HEXAVOX_URGENT_YIELD_MS", 0)),
        urgent_bulk_batch=max(1, _env_int("HEXAVOX_URGENT_BULK_BATCH", 100)),
        bulk_rate=max(0.0, _env_float("HEXAVOX_BULK_RATE", 0.0)),
        dispatch_coalesce=max(0, _env_int("HEXAVOX_DISPATCH_COALESCE", 50)),
        dispatch_coalesce_min_age=max(0.0, _env_float("HEXAVOX_DISPATCH_COALESCE_MIN_AGE", 2.0)),
        inline_dispatch=_env_bool("HEXAVOX_INLINE_DISPATCH", True),
        log_format=_env("HEXAVOX_LOG_FORMAT", "text").strip().lower(),
        metrics_port=_env_int("HEXAVOX_METRICS_PORT", 0),
        metrics_max_merchants=_env_int("HEXAVOX_METRICS_MAX_MERCHANTS", 20),
        release=_env("HEXAVOX_RELEASE", "") or _default_release(),
        sentry_traces_sample_rate=_env_float("HEXAVOX_SENTRY_TRACES_SAMPLE_RATE", 0.0),
        credit_prices=_env_channel_ints("HEXAVOX_CREDIT_PRICES", DEFAULT_CREDIT_PRICES),
        payment_webhook_secret=_env("HEXAVOX_PAYMENT_WEBHOOK_SECRET", ""),
        webhook_tolerance=_env_int("HEXAVOX_WEBHOOK_TOLERANCE", 300),
        callback_ports=_env_ports("HEXAVOX_CALLBACK_PORTS", "80,443"),
        migration_database_url=_env("HEXAVOX_MIGRATION_DATABASE_URL", database_url),
        runtime_role=_env("HEXAVOX_RUNTIME_ROLE", ""),
        max_recipients=_env_int("HEXAVOX_MAX_RECIPIENTS", 1000),
        max_payload_bytes=_env_int("HEXAVOX_MAX_PAYLOAD_BYTES", 640 * 1024),
        registrar=_env("HEXAVOX_REGISTRAR", "simulated"),
        registrar_options=_env_json_object("HEXAVOX_REGISTRAR_OPTIONS"),
        registrar_webhook_secret=_env("HEXAVOX_REGISTRAR_WEBHOOK_SECRET", ""),
        sip_domain=_env("HEXAVOX_SIP_DOMAIN", "sip.hexavox.local"),
        voice_token_ttl=min(3600, max(60, _env_int("HEXAVOX_VOICE_TOKEN_TTL", 300))),
        lookup_cache_seconds=max(0.0, _env_float("HEXAVOX_LOOKUP_CACHE_SECONDS", 2.0)),
        simulator={k[len("HEXAVOX_SIMULATOR_") :].lower(): v for k, v in os.environ.items()
                   if k.startswith("HEXAVOX_SIMULATOR_")},
    )
    _check(settings)
    return settings


def _env_providers() -> dict[str, dict[str, object]]:
    raw = _env("HEXAVOX_PROVIDERS", '{"simulated": {"driver": "simulated"}}')
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ConfigurationError(f"HEXAVOX_PROVIDERS must be a JSON object: {err}") from err
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) and "driver" in v for v in parsed.values()):
        raise ConfigurationError('HEXAVOX_PROVIDERS must look like {"name": {"driver": "simulated", ...}}')
    return parsed


def _env_json_object(name: str) -> dict[str, object]:
    raw = _env(name, "{}")
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ConfigurationError(f"{name} must be a JSON object: {err}") from err
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"{name} must be a JSON object")
    return parsed


def _env_ports(name: str, default: str) -> frozenset[int]:
    raw = _env(name, default)
    try:
        ports = frozenset(int(part) for part in raw.split(",") if part.strip())
    except ValueError as err:
        raise ConfigurationError(f"{name} must be comma-separated port numbers, got {raw!r}") from err
    if not ports or not all(0 < port < 65536 for port in ports):
        raise ConfigurationError(f"{name} must name ports 1-65535, got {raw!r}")
    return ports


def _env_unit_prices() -> dict[str, int]:
    return _env_channel_ints("HEXAVOX_UNIT_PRICES", DEFAULT_UNIT_PRICES)


def _env_channel_ints(name: str, defaults: dict[str, int]) -> dict[str, int]:
    """A per-channel amount (price, limit); a typo'd channel or a negative amount would silently misbill: refused."""
    raw = _env(name, json.dumps(defaults))
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ConfigurationError(f"{name} must be a JSON object: {err}") from err
    if not isinstance(parsed, dict) or not all(k in defaults and type(v) is int and v >= 0 for k, v in parsed.items()):
        raise ConfigurationError(f"{name} must look like {json.dumps(defaults)}")
    return {**defaults, **parsed}


def _default_release() -> str:
    """``hexavox-worker@<version>`` of the installed package, so Sentry groups events by what was deployed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"hexavox-worker@{version('hexavox-worker')}"
    except PackageNotFoundError:
        return "hexavox-worker@unknown"


def _default_result_backend(database_url: str) -> str:
    """Celery's database backend on the service's database, through psycopg 3 like the service itself.

    SQLAlchemy reads a bare ``postgresql://`` as psycopg2, which is not installed.
    """
    return result_backend_url("db+" + database_url)


def result_backend_url(url: str) -> str:
    """A ``db+postgresql://`` (or ``db+postgres://``, ``+psycopg2``) backend URL in its psycopg 3 form."""
    for prefix in ("db+postgresql://", "db+postgres://", "db+postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "db+postgresql+psycopg://" + url[len(prefix):]
    return url


def _check(settings: Settings) -> None:
    """Refuse combinations that lose messages or leak data, at start-up rather than at 3 a.m."""
    if settings.visibility_timeout <= settings.task_time_limit:
        raise ConfigurationError(
            "HEXAVOX_VISIBILITY_TIMEOUT must be larger than HEXAVOX_TASK_TIME_LIMIT, "
            "otherwise Redis redelivers tasks that are still running"
        )
    if settings.markup_percent < 0:
        raise ConfigurationError("HEXAVOX_MARKUP_PERCENT must not be negative")
    if settings.envelope_max_age < 60:
        raise ConfigurationError("HEXAVOX_ENVELOPE_MAX_AGE must be at least 60 seconds")
    _check_observability(settings)
    if settings.max_delivery_attempts < 1:
        raise ConfigurationError("HEXAVOX_MAX_DELIVERY_ATTEMPTS must be at least 1")
    if settings.api_rate_limit < 0 or settings.api_max_body_bytes < 1024 or settings.api_max_recipients < 1:
        raise ConfigurationError("HEXAVOX_API_RATE_LIMIT must not be negative, HEXAVOX_API_MAX_BODY_BYTES must be at "
                                 "least 1024 and HEXAVOX_API_MAX_RECIPIENTS at least 1")
    if settings.environment == "production":
        _check_production(settings)
    if settings.environment == "production" and settings.crash_point:
        raise ConfigurationError("HEXAVOX_CRASH_POINT is for tests only and refused in production")
    if settings.environment == "production" and settings.allow_private_callbacks:
        raise ConfigurationError("HEXAVOX_ALLOW_PRIVATE_CALLBACKS is for tests only and refused in production")


def _check_observability(settings: Settings) -> None:
    if settings.log_format not in {"text", "json"}:
        raise ConfigurationError(f"HEXAVOX_LOG_FORMAT must be text or json, got {settings.log_format!r}")
    if not 0 <= settings.metrics_port <= 65535:
        raise ConfigurationError("HEXAVOX_METRICS_PORT must be a port number (0 switches the endpoint off)")
    if settings.metrics_max_merchants < 0:
        raise ConfigurationError("HEXAVOX_METRICS_MAX_MERCHANTS must not be negative")
    if not 0.0 <= settings.sentry_traces_sample_rate <= 1.0:
        raise ConfigurationError("HEXAVOX_SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1")


def _check_production(settings: Settings) -> None:
    """Production runs on real servers, and whoever can write to the broker can run tasks: it must need credentials."""
    if settings.database_url.startswith("sqlite") or settings.broker_url.startswith(("filesystem", "memory")):
        raise ConfigurationError("production needs HEXAVOX_DATABASE_URL (PostgreSQL) and HEXAVOX_BROKER_URL set")
    if not settings.redis_url:
        raise ConfigurationError("production needs HEXAVOX_REDIS_URL: without it every worker process keeps its own "
                                 "throughput limits and circuit breakers, and together they exceed a provider's limit")
    for name, url in (("HEXAVOX_BROKER_URL", settings.broker_url), ("HEXAVOX_REDIS_URL", settings.redis_url)):
        if url and "@" not in url and not url.startswith(("rediss://", "amqps://")):
            raise ConfigurationError(f"{name} must carry credentials or use TLS in production")
    if len(settings.service_key) < 32:
        raise ConfigurationError("production needs HEXAVOX_SERVICE_KEY (at least 32 characters, the same in every "
                                 "process): internal tasks are signed with it, so nobody else can publish them")
    if simulated := simulated_providers(settings):
        raise ConfigurationError(f"production refuses the simulated provider ({', '.join(simulated)}): the "
                                 "simulated driver sends nothing; configure real ones in HEXAVOX_PROVIDERS and "
                                 "HEXAVOX_DEFAULT_PROVIDER")
    _check_production_providers(settings.providers)
    if _same_database(settings.result_backend, settings.database_url):
        raise ConfigurationError("HEXAVOX_RESULT_BACKEND must not be the main database in production: client services "
                                 "get its URL, and with it they could read and write every table (use a Redis db "
                                 "of its own, e.g. redis://:password@redis:6379/2)")


def _same_database(result_backend: str, database_url: str) -> bool:
    """True when the result backend is (``db+``) the main database: same host, port and database name."""
    if not result_backend.startswith("db+"):
        return False
    backend, main = urlsplit(result_backend[3:]), urlsplit(database_url)
    return (backend.hostname, backend.port, backend.path) == (main.hostname, main.port, main.path)


def _check_production_providers(providers: dict[str, dict[str, object]]) -> None:
    """Anyone who can reach the webhook receiver can post to a provider's endpoint: without a secret its reports
    (a call made free, a message failed, a STOP) could be forged. The simulated driver is for tests and demos."""
    for name, options in providers.items():
        if options.get("driver") == "simulated":
            raise ConfigurationError(f"HEXAVOX_PROVIDERS: {name!r} uses the simulated driver, refused in production")
        if not options.get("webhook_secret"):
            raise ConfigurationError(f"HEXAVOX_PROVIDERS: {name!r} has no webhook_secret; in production every "
                                     "provider's delivery reports must be signed")


def simulated_providers(settings: Settings) -> list[str]:
    """The configured provider instances that only pretend to send."""
    return sorted(name for name, options in settings.providers.items() if options.get("driver") in SIMULATED_DRIVERS)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
