"""The fault suite's machinery: private servers, a scenario's workers and load, and the ledger audit.

Everything a scenario may break is its own: the service's PostgreSQL cluster, the provider's (the simulated
provider's ledger lives on a second private cluster, as a real provider's records would live elsewhere), a
broker Redis and a throttle/breaker Redis, all started here on free ports. The machine's shared services are
never touched. Jobs come in through the queue door (``HexavoxClient``, which publishes a job again under its
request id while no answer comes), two workers run them, and this process plays beat (outbox relay and
reconcile every second) unless a scenario runs real beats.

The audit (Jepsen's queue checker, in the service's terms): **lost** (a message the client asked for that
never became an accepted message, or was refused for an infrastructure reason), **duplicated** (more than one
accepted call for a message in the provider's ledger), **double charged** (units used beyond what the
delivered messages cost), **stuck** (accepted but not FINAL when the settle deadline passed), and the time
from the first publish until every message was FINAL.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from faults import PrivatePostgres, PrivateRedis  # noqa: E402
from support import WorkerProcess, start_worker  # noqa: E402

TERMINAL = {"DELIVERED", "FAILED", "EXPIRED", "REFUSED"}
SMS_JOB = "hexavox.sms.send.v1"
RECIPIENTS_PER_JOB = 10

#: Recovery timers shortened to fit a run (production defaults in README's configuration table).
FAST_ENV = {
    "HEXAVOX_VISIBILITY_TIMEOUT": "10",
    "HEXAVOX_TASK_TIME_LIMIT": "5",
    "HEXAVOX_PROVIDER_TIMEOUT": "2",
    "HEXAVOX_OUTBOX_STALE": "5",
    "HEXAVOX_AMBIGUOUS_GRACE": "0",
    "HEXAVOX_DLR_GRACE": "1",
    "HEXAVOX_RECONCILE_MAX_BACKOFF": "2",
    "HEXAVOX_SIMULATOR_LATENCY_MS": "20",
    "HEXAVOX_ALLOW_PRIVATE_CALLBACKS": "1",
    "HEXAVOX_MAX_DELIVERY_ATTEMPTS": "5",
    "HEXAVOX_DB_POOL_SIZE": "10",
    "HEXAVOX_DB_MAX_OVERFLOW": "10",
}


@dataclass
class Servers:
    """The private servers of one suite run; databases are cloned per scenario from a migrated template."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hexavox-chaos-")))
    service: PrivatePostgres = field(default_factory=PrivatePostgres)
    provider: PrivatePostgres = field(default_factory=PrivatePostgres)
    broker: PrivateRedis = field(default_factory=PrivateRedis)
    guards: PrivateRedis = field(default_factory=PrivateRedis)
    template: str = "hexavox_template"

    def start(self) -> Servers:
        self.service.init()
        self.provider.init()
        self.broker.start()
        self.guards.start()
        _migrate(self.service.create_database(self.template))
        return self

    def stop(self) -> None:
        for server in (self.broker, self.guards):
            with contextlib.suppress(Exception):
                server.stop()
        for cluster in (self.service, self.provider):
            cluster.destroy()

    def fresh(self, name: str) -> tuple[str, str]:
        """A new service database (from the template) and ledger database; both Redis servers emptied."""
        import psycopg
        import redis

        with psycopg.connect(self.service.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        ledger = self.provider.create_database(name + "_ledger")
        for server in (self.broker, self.guards):
            redis.Redis.from_url(server.url).flushall()
        return self.service.url(name), ledger


def _migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO / "alembic.ini"))
    cfg.cmd_opts = None
    cfg.set_main_option("sqlalchemy.url", url.replace("postgresql://", "postgresql+psycopg://"))
    command.upgrade(cfg, "head")
    from worker.db import dispose_engines

    dispose_engines()  # the template must have no session left, or it cannot be cloned


@dataclass
class Outcome:
    """One scenario's audit line."""

    scenario: str
    messages: int
    lost: int = 0
    duplicated: int = 0
    double_charged: int = 0
    stuck: int = 0
    seconds_to_final: float = 0.0
    republished_jobs: int = 0
    unanswered_jobs: int = 0  #: jobs whose answer the client never got (their messages may still be accepted)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.double_charged or self.stuck or self.unanswered_jobs)


@dataclass
class Stage:
    """One scenario's world: its environment, workers, beats and the load it submitted."""

    name: str
    servers: Servers
    env: dict[str, str]
    workdir: Path
    seed: int
    workers: list[WorkerProcess] = field(default_factory=list)
    beats: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sweeping: bool = True
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    republished: int = 0
    started: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    # -- processes -------------------------------------------------------------------------------------------
    def worker(self, name: str, *, pool: str = "threads", concurrency: int = 8) -> WorkerProcess:
        from worker.queues import ALL_QUEUES

        worker = start_worker(self.env, self.workdir / f"{name}-{len(self.workers)}.log", queues=",".join(ALL_QUEUES),
                              pool=pool, concurrency=concurrency, extra=["-n", f"{name}-{uuid.uuid4().hex[:6]}@%h"])
        self.workers.append(worker)
        return worker

    def beat(self) -> subprocess.Popen[bytes]:
        index = len(self.beats)
        log = open(self.workdir / f"beat-{index}.log", "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker", "beat", "-l", "INFO",
                                 "-s", str(self.workdir / f"beat-{index}.schedule")], cwd=REPO,
                                env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.beats.append(proc)
        return proc

    def stop_all(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                if worker.proc.poll() is None:
                    worker.kill(signal.SIGCONT)
                worker.stop(timeout=15)
        for beat in self.beats:
            if beat.poll() is None:
                os.killpg(beat.pid, signal.SIGKILL)
                beat.wait(10)

    # -- load and progress -----------------------------------------------------------------------------------
    def progress(self) -> int:
        """How many messages of this run reached the provider and were recorded (SENT or FINAL)."""
        from sqlalchemy import func, select

        from schema.models import Message
        from worker.db import session_scope

        try:
            with session_scope() as session:
                return int(session.scalar(select(func.count()).select_from(Message)
                                          .where(Message.status.in_(["SENT", "DELIVERED", "FAILED"]))) or 0)
        except Exception:  # the database may be the thing that is down
            return 0

    def wait_progress(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.progress() < count:
            time.sleep(0.2)


def submit(stage: Stage, tenant: Any, messages: int) -> Any:
    """Publish ``messages`` SMS as jobs of RECIPIENTS_PER_JOB recipients through the queue door."""
    from worker.client import HexavoxClient

    from factories import sms

    client = HexavoxClient(tenant.key_id, tenant.secret)
    stage.started = time.monotonic()
    for first in range(0, messages, RECIPIENTS_PER_JOB):
        numbers = [f"+1813555{1000 + n}" for n in range(first, min(first + RECIPIENTS_PER_JOB, messages))]
        payload = sms(tenant, to=numbers, body=f"Your class moved ({stage.name})")
        payload.pop("auth")
        request_id = client.submit(SMS_JOB, payload)
        stage.jobs[request_id] = payload
    return client


def collect_answers(stage: Stage, client: Any, *, timeout: float = 8.0, attempts: int = 25) -> None:
    """Wait for every job's answer with ``HexavoxClient.answer`` (it publishes a job again while none comes)."""
    lock = threading.Lock()
    original = client.resubmit

    def counting(*args: Any, **kwargs: Any) -> None:
        with lock:
            stage.republished += 1
        original(*args, **kwargs)

    client.resubmit = counting

    def one(request_id: str) -> tuple[str, dict[str, Any] | None]:
        try:
            return request_id, client.answer(request_id, SMS_JOB, stage.jobs[request_id], timeout=timeout,
                                              attempts=attempts)
        except Exception:
            return request_id, None

    with ThreadPoolExecutor(max_workers=16) as pool:
        for request_id, answer in pool.map(one, list(stage.jobs)):
            if answer is not None:
                stage.answers[request_id] = answer


def accepted_ids(stage: Stage) -> tuple[list[str], int, Counter[str]]:
    """(ids of the messages the service recorded for this run's jobs, messages lost, refusal codes).

    Lost: asked for by a job but never recorded as a message, or refused (every recipient here is valid, the
    body and balance are fine, so any refusal is a fault's doing). Counted from the database, not from the
    answers: a job whose answer the client never got may still have been accepted.
    """
    from sqlalchemy import select

    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        rows = session.execute(select(Message.id, Message.request_id, Message.status, Message.error_code)
                               .where(Message.request_id.in_(list(stage.jobs)))).all()
    codes: Counter[str] = Counter(row.error_code for row in rows if row.status == "REFUSED")
    for answer in stage.answers.values():
        if answer.get("status") == "REFUSED" and not answer.get("messages"):
            codes[answer.get("error", {}).get("code", "?")] += 1
    ids = [row.id for row in rows if row.status != "REFUSED"]
    return ids, sum(len(p["to"]) for p in stage.jobs.values()) - len(ids), codes


def states(ids: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return dict(session.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).tuples().all())


def settle(stage: Stage, timeout: float) -> tuple[list[str], int, Counter[str], float]:
    """Play beat (relay, reconcile) until every recorded message of the run is FINAL.

    Returns the final (ids, lost, refusal codes) and the seconds since the first publish. The messages are read
    again each round: a job the client re-published late is accepted late.
    """
    from tasks.maintenance import reconcile_sweep, relay_outbox

    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        if stage.sweeping:
            with contextlib.suppress(Exception):
                relay_outbox()
                reconcile_sweep()
        with contextlib.suppress(Exception):
            ids, lost, codes = accepted_ids(stage)
            if not lost and set(states(ids).values()) <= TERMINAL:
                break
        time.sleep(1.0)
    seconds = time.monotonic() - stage.started
    ids, lost, codes = accepted_ids(stage)
    return ids, lost, codes, seconds


def audit(stage: Stage, ids: list[str], lost: int, seconds: float, ledger_url: str, merchant_pk: int) -> Outcome:
    from sqlalchemy import func, select

    from providers.simulated import ledger_counts
    from schema.models import Balance, Message
    from worker.db import session_scope

    found = states(ids)
    calls = ledger_counts(ledger_url)
    with session_scope() as session:
        delivered = int(session.scalar(select(func.coalesce(func.sum(Message.units), 0))
                                       .where(Message.merchant_id == merchant_pk, Message.status == "DELIVERED"))
                        or 0)
        balance = session.get(Balance, (merchant_pk, "SMS"))
        used = balance.used if balance is not None else 0
        if used != delivered:
            by_state = session.execute(select(Message.status, func.count(), func.sum(Message.units))
                                       .where(Message.merchant_id == merchant_pk).group_by(Message.status)).all()
            print(f"  charge check: used {used}, delivered units {delivered}, by state {by_state}", flush=True)
    stuck = sum(1 for mid in ids if found.get(mid) not in TERMINAL)
    return Outcome(scenario=stage.name, messages=sum(len(p["to"]) for p in stage.jobs.values()), lost=lost,
                   duplicated=sum(1 for mid in ids if calls.get(mid, 0) > 1),
                   double_charged=max(0, used - delivered) if not stuck else 0, stuck=stuck,
                   seconds_to_final=seconds, republished_jobs=stage.republished,
                   unanswered_jobs=len(stage.jobs) - len(stage.answers))


def use_env(env: dict[str, str]) -> None:
    """Point this process (the client, the audit, the sweeping "beat") at the scenario's world."""
    os.environ.pop("HEXAVOX_RESULT_BACKEND", None)  # the default: answers in the scenario's PostgreSQL
    os.environ.update(env)
    _reset()


def _reset() -> None:
    from providers.breaker import reset_breakers
    from providers.registry import reset_providers
    from providers.throttle import reset_throttles
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    reset_settings()
    reset_providers()
    reset_breakers()
    reset_throttles()
    dispose_engines()
    if "worker.celery_app" in sys.modules:
        from worker.celery_app import app, reconfigure

        reconfigure()
        app.conf.broker_transport = None  # left behind by an earlier file-broker configuration otherwise
