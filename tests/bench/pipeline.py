"""The single-message scenarios of `make bench`: jobs published from outside, as another service would.

Every job is signed (worker/envelope.py) and published with kombu by :class:`worker.client.HexavoxClient` onto its
intake queue *before* the worker starts, like the no-op baseline B0, so both drain a queue of the same depth with
the same pool. A scenario ends when every message is SENT (counted in PostgreSQL).

  pipeline     TXN jobs, one recipient each: intake (policy, commit) and dispatch (claim, provider, record)
  OTP latency  single OTP jobs published one at a time at a steady pace on the documented OTP worker layout,
               idle or while a backlog of MKT jobs drains on the bulk worker; publish to provider (the simulated
               provider's ledger time of the call, same clock)
  reconcile    one sweep over N AMBIGUOUS messages the simulated provider knows: messages settled per second
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from run import REPO, celery, rate_of, stop

if TYPE_CHECKING:
    from factories import Tenant

#: A merchant with room for any benchmark, and the documented worker layout (README, Campaigns).
SMS_LIMIT = 10**9
OTP_WORKER = ["-Q", "otp,dispatch.otp", "-P", "threads", "-c", "50"]
BULK_WORKER = ["-Q", "bulk,dispatch.bulk", "-P", "threads", "-c", "16"]


@dataclass
class Service:
    """The private services one bench run shares between its scenarios."""

    db_url: str
    redis_url: str
    logs: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {"HEXAVOX_DATABASE_URL": self.db_url, "HEXAVOX_BROKER_URL": self.redis_url + "/3",
                "HEXAVOX_REDIS_URL": self.redis_url + "/4", "HEXAVOX_RESULT_BACKEND": self.redis_url + "/5",
                "HEXAVOX_SIMULATOR_LATENCY_MS": "0", "HEXAVOX_DB_POOL_SIZE": "20", "HEXAVOX_DB_MAX_OVERFLOW": "80",
                "HEXAVOX_PROVIDER_TIMEOUT": "5", **extra}


def use(env: dict[str, str]) -> None:
    """Point this process (publisher, counters) at the scenario's settings."""
    from worker.celery_app import reconfigure
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    for key in ("HEXAVOX_PROVIDERS", "HEXAVOX_DEFAULT_PROVIDER"):  # one scenario's provider is not the next one's
        os.environ.pop(key, None)
    os.environ.update(env)
    reset_settings()
    dispose_engines()
    reconfigure()


def merchant(tag: str) -> tuple[Tenant, str]:
    """A fresh tenant and merchant for one scenario: (tenant, merchant id)."""
    from factories import make_merchant, make_tenant

    tenant = make_tenant(f"bench-{tag}")
    make_merchant(tenant, f"m{tag}", sms=SMS_LIMIT)
    return tenant, f"m{tag}"


#: Area codes of the benchmark's numbers: 10,000 numbers each.
AREAS = (813, 727, 941, 352, 407, 321, 561, 954)


def number(i: int) -> str:
    """The i-th of 80,000 distinct valid US numbers."""
    return f"+1{AREAS[i // 10000]}555{i % 10000:04d}"


def sent_count(tag: str) -> Callable[[], int]:
    from sqlalchemy import func, select

    from schema.models import Message
    from worker.db import session_scope

    def count() -> int:
        with session_scope() as session:
            return int(session.scalar(select(func.count()).where(
                Message.status == "SENT", Message.body.like(f"bench {tag} %"))) or 0)

    return count


def publish(tenant: Tenant, merchant_id: str, tag: str, n: int, message_type: str, *, start: int = 0) -> None:
    """N single-recipient jobs, signed and published as another service would."""
    from worker.client import HexavoxClient

    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        for i in range(start, start + n):
            body = f"bench {tag} {i}" + (" STOP to opt out" if message_type == "MKT" else "")
            client.submit("hexavox.sms.send.v1", {"merchantId": merchant_id, "to": number(i), "body": body,
                                                  "sender": "GYMA", "type": message_type})
    finally:
        client.close()


def pipeline(service: Service, n: int, pool: list[str], *, latency_ms: int = 0, providers: str = "",
             name: str = "pipeline", inline: bool = True) -> float:
    """TXN jobs through intake and dispatch on one worker (intake and dispatch queues): SENT per second."""
    extra = {"HEXAVOX_SIMULATOR_LATENCY_MS": str(latency_ms), "HEXAVOX_INLINE_DISPATCH": str(inline).lower()}
    if providers:
        extra |= {"HEXAVOX_PROVIDERS": providers, "HEXAVOX_DEFAULT_PROVIDER": "fake"}
    env = service.env(**extra)
    use(env)
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    tenant, merchant_id = merchant(tag)
    publish(tenant, merchant_id, tag, n, "TXN")
    worker = celery(["-A", "worker", "worker", "-Q", "transactional,dispatch.transactional", *pool,
                     "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "WARNING"], env,
                    service.logs / f"{name}.log")
    try:
        rate, _ = rate_of(sent_count(tag), n, 300)
    finally:
        stop(worker)
    return rate


@contextmanager
def fake_provider() -> Iterator[str]:
    """The fake HTTP provider (tests/provider_servers.py) in a process of its own: its ``HEXAVOX_PROVIDERS``."""
    import json

    code = ("import sys, time; sys.path.insert(0, 'tests'); from provider_servers import running_fake_api\n"
            "with running_fake_api() as api:\n    print(api.base_url, flush=True)\n    time.sleep(86400)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().decode().strip()
        from provider_servers import API_KEY

        yield json.dumps({"fake": {"driver": "http_sms", "shape": "hexa", "base_url": f"{base}/hexa",
                                   "api_key": API_KEY, "sender": "GYMA"}})
    finally:
        stop(proc)


def _ledger_times(recipients: list[str], since_ms: float) -> dict[str, int]:
    """When the simulated provider got each of ``recipients`` (ms since the epoch), calls since ``since_ms``."""
    from sqlalchemy import select

    from providers.simulated import LEDGER
    from providers.simulated_ledger import ledger_engine
    from worker.settings import get_settings

    with ledger_engine(get_settings().database_url).connect() as conn:  # creates the ledger on a fresh database
        rows = conn.execute(select(LEDGER.c.recipient, LEDGER.c.created_at)
                            .where(LEDGER.c.recipient.in_(recipients), LEDGER.c.created_at >= since_ms)).all()
    return {r[0]: int(r[1]) for r in rows}


def otp_latency(service: Service, count: int, pace: float, *, backlog: int = 0, same_merchant: bool = False
                ) -> dict[str, float]:
    """Publish-to-provider latency of ``count`` OTPs sent every ``pace`` seconds on the OTP worker layout.

    With ``backlog``, that many MKT jobs (opted-in recipients) wait on the bulk queue and a bulk worker drains them
    at the same time; the OTPs start once the bulk worker is busy. The backlog is another merchant's unless
    ``same_merchant``: then every MKT intake also takes the OTP merchant's quota row lock, and OTPs queue for it.
    """
    env = service.env()
    use(env)
    tag = f"otp-{uuid.uuid4().hex[:6]}"
    tenant, merchant_id = merchant(tag)
    since, workers = time.time() * 1000, []
    try:
        if backlog:  # another merchant's campaign traffic: one merchant's own is paced by its quota row
            bulk_tenant, bulk_merchant = (tenant, merchant_id) if same_merchant else merchant(tag + "-bulk")
            _opt_in(bulk_merchant, backlog)
            publish(bulk_tenant, bulk_merchant, tag + "-mkt", backlog, "MKT")
            workers.append(celery(["-A", "worker", "worker", *BULK_WORKER, "-n", "bulk@%h", "--without-mingle",
                                   "--without-gossip", "--without-heartbeat", "-l", "WARNING"], env,
                                  service.logs / "bulk.log"))
        workers.append(celery(["-A", "worker", "worker", *OTP_WORKER, "-n", "otp@%h", "--without-mingle",
                               "--without-gossip", "--without-heartbeat", "-l", "WARNING"], env,
                              service.logs / "otp.log"))
        from worker.client import HexavoxClient

        client = HexavoxClient(tenant.key_id, tenant.secret)
        warm = 50_000  # numbers of the OTPs: apart from the backlog's
        for i in range(5):  # warm up: the worker is up and its connections are open
            client.submit("hexavox.sms.send.v1", {"merchantId": merchant_id, "to": number(warm + i),
                                                  "body": f"bench {tag} warm {i}", "sender": "GYMA", "type": "OTP"})
        rate_of(lambda: len(_ledger_times([number(warm + i) for i in range(5)], since)), 5, 120)
        draining = sent_count(tag + "-mkt")
        published: dict[str, float] = {}
        for i in range(count):
            to = number(warm + 100 + i)
            published[to] = time.time() * 1000
            client.submit("hexavox.sms.send.v1", {"merchantId": merchant_id, "to": to, "body": f"bench {tag} {i}",
                                                  "sender": "GYMA", "type": "OTP"})
            time.sleep(pace)
        client.close()
        rate_of(lambda: len(_ledger_times(list(published), since)), count, 120)
        still = backlog - draining() if backlog else 0
        times = _ledger_times(list(published), since)
    finally:
        for worker in workers:
            stop(worker)
    latencies = sorted(times[to] - at for to, at in published.items())
    return {"p50": statistics.median(latencies), "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "backlog_left": float(still)}


def _opt_in(merchant_id: str, count: int) -> None:
    """OPT_IN for the backlog's recipients, in one statement (marketing needs it)."""
    from sqlalchemy import text

    from worker.db import session_scope

    with session_scope() as session:
        internal = session.scalar(text("SELECT id FROM merchants WHERE external_id = :m"), {"m": merchant_id})
        session.execute(text("INSERT INTO consents (merchant_id, channel, contact, status, source) "
                             "SELECT :m, 'SMS', c, 'OPT_IN', 'bench' FROM unnest(CAST(:contacts AS text[])) AS c"),
                        {"m": internal, "contacts": [number(i) for i in range(count)]})


@dataclass
class Sweep:
    """One reconcile measurement: ``pending`` messages settled in ``seconds``; ``batch_read_ms`` is the median time
    of the sweep's batch query (:func:`worker.policy.reconcile.pending_batch`, 200 rows) before the sweep starts,
    the part of the cost that would grow with the backlog if the query were not served by an index."""

    pending: int
    settled: int
    seconds: float
    batch_read_ms: float
    seed_seconds: float
    #: Inside the sweep, every ``every`` seconds: (AMBIGUOUS still pending, ms a message since the last sample,
    #: load average), to tell a cost that grows with the backlog from one that follows the machine's load.
    windows: list[tuple[int, float, float]] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.settled / max(self.seconds, 1e-9)

    @property
    def ms_per_message(self) -> float:
        return 1000 * self.seconds / max(self.settled, 1)


def seed_ambiguous(template: str, pending: int, tag: str) -> None:
    """``pending`` copies of message ``template`` and of its ledger entry, AMBIGUOUS an hour ago, in two set-based
    statements (generate_series in PostgreSQL: nothing is built or bound in Python, so 100,000 take seconds).

    The ids are uuid-shaped md5 digests of the tag and the row number, so the ledger rows can name their message
    without a join; each provider reference is the message's own (unique across the sizes of one run). The tables
    are analyzed afterwards, as autovacuum would do in a real deployment before a backlog is swept.
    """
    from sqlalchemy import text

    from providers.simulated import LEDGER
    from schema.models import Message
    from worker.db import session_scope

    columns = [c.name for c in Message.__table__.columns if c.name not in ("id", "status", "updated_at",
                                                                             "provider_ref")]
    ledger = [c.name for c in LEDGER.columns if c.name not in ("id", "message_id", "provider_ref")]
    new_id = "CAST(CAST(md5(:tag || '-' || n) AS uuid) AS text)"
    with session_scope() as session:
        session.execute(text(f"INSERT INTO messages (id, status, updated_at, provider_ref, {', '.join(columns)}) "  # noqa: S608
                             f"SELECT {new_id}, 'AMBIGUOUS', now() - interval '1 hour', 'bench-' || {new_id}, "
                             f"{', '.join('m.' + c for c in columns)} "
                             "FROM messages m, generate_series(1, :n) AS n WHERE m.id = :t"),
                        {"tag": tag, "n": pending, "t": template})
        session.execute(text(f"INSERT INTO simulator_ledger (message_id, provider_ref, {', '.join(ledger)}) "  # noqa: S608
                             f"SELECT {new_id}, 'bench-' || {new_id}, {', '.join('l.' + c for c in ledger)} "
                             "FROM simulator_ledger l, generate_series(1, :n) AS n WHERE l.message_id = :t"),
                        {"tag": tag, "n": pending, "t": template})
    with session_scope() as session:
        session.execute(text("ANALYZE messages"))
        session.execute(text("ANALYZE simulator_ledger"))


def _ambiguous_left() -> int:
    from sqlalchemy import func, select

    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        return int(session.scalar(select(func.count()).where(Message.status == "AMBIGUOUS")) or 0)


def _watch(stop_at: threading.Event, every: float, windows: list[tuple[int, float, float]]) -> None:
    """Fill ``windows`` (see :class:`Sweep`) until ``stop_at`` is set."""
    at, left = time.monotonic(), _ambiguous_left()
    while not stop_at.wait(every):
        now, still = time.monotonic(), _ambiguous_left()
        if still < left:
            windows.append((left, round(1000 * (now - at) / (left - still), 2), round(os.getloadavg()[0], 2)))
        at, left = now, still


def reconcile_rate(service: Service, pending: int, every: float = 0.0) -> Sweep:
    """One reconcile sweep over ``pending`` AMBIGUOUS messages the provider has: how long it takes to settle them.

    One message goes through the real path (intake, dispatch, the simulated provider's ledger); its row and its
    ledger entry are then copied ``pending`` times under new ids, AMBIGUOUS: what a crash after the provider call
    leaves behind (:func:`seed_ambiguous`). The sweep runs in this process, as the reconcile task would, until none
    is left; only the sweep is timed. With ``every``, a thread samples what is left that often (``Sweep.windows``).
    """
    from providers.registry import get_provider
    from worker.policy.dispatch import dispatch_message
    from worker.policy.reconcile import pending_batch, sweep
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    use(service.env(HEXAVOX_DLR_GRACE="3600"))
    tag = f"reconcile-{uuid.uuid4().hex[:6]}"
    tenant, merchant_id = merchant(tag)
    from factories import sms

    outcome = run_send_job("hexavox.sms.send.v1", sms(tenant, merchantId=merchant_id, to=number(0),
                                                      body=f"bench {tag} template"), str(uuid.uuid4()))
    (template, _, _), = outcome.to_dispatch
    settings = get_settings()
    dispatch_message(template, settings, provider_sender(settings))
    seeding = time.monotonic()
    seed_ambiguous(template, pending, tag)
    seeded = time.monotonic() - seeding
    reads = []
    for _ in range(5):
        began = time.monotonic()
        assert len(pending_batch(settings, 200)) == min(200, pending)
        reads.append(1000 * (time.monotonic() - began))
    windows: list[tuple[int, float, float]] = []
    stop_at = threading.Event()
    watcher = threading.Thread(target=_watch, args=(stop_at, every, windows), daemon=True)
    if every:
        watcher.start()
    started, settled = time.monotonic(), 0
    try:
        while True:
            counts, _ = sweep(settings, lambda names: [get_provider(name, settings) for name in names],
                              budget_seconds=3600)
            settled += counts.settled
            if counts.examined == 0 or settled >= pending:
                break
    finally:
        stop_at.set()
    elapsed = time.monotonic() - started
    if settled != pending:
        raise RuntimeError(f"the sweep settled {settled} of {pending} AMBIGUOUS messages")
    return Sweep(pending, settled, elapsed, statistics.median(reads), seeded, windows)


def sweep_row(result: Sweep) -> str:
    """The report's table row for one reconcile size."""
    return (f"| reconcile sweep, {result.pending:,} AMBIGUOUS | {result.per_s:.0f} msgs/s | "
            f"{result.ms_per_message:.2f} ms a message (batch read {result.batch_read_ms:.1f} ms) |")
