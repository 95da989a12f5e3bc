"""`make bench`: the single-message path against a Celery no-op baseline measured in the same run.

Scenarios (see shared PERFORMANCE.md for the method and tests/bench/pipeline.py for the details), each a median of
``--repeat`` repetitions on the same pool (``-P threads -c 64``), reported as a ratio to B0 of its repetition:
  B0              Celery no-op task, one Redis INCR each
  pipeline        TXN jobs signed and published from outside, intake + dispatch, simulated provider at 0 ms
  pipeline_queued the same with inline dispatch off (a second Celery task per message)
  pipeline_http   the same through the real HTTP SMS driver, against the fake provider server in its own process
  dispatch        dispatch alone (messages accepted in-process, dispatch tasks pre-enqueued)
  pipeline_200ms  the pipeline with the simulated provider at 200 ms (exits 1 when below 0.8 of 0 ms)
Then once: OTP publish-to-provider p50/p99 on the documented OTP worker layout, idle and while a backlog of MKT jobs
(another merchant's, ``--backlog``) drains on the bulk worker; the reconcile sweep's cost per message at
``--reconcile`` sizes (tests/bench/reconcile.py runs that scenario alone).

Uses a private Redis on a free port and its own PostgreSQL database on the local server (HEXAVOX_TEST_PG_URL,
default postgresql://postgres@127.0.0.1:5432/postgres); no other environment is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
#: Where the TXN messages of the dispatch scenarios wait (dispatch has queues of its own, apart from intake).
DISPATCH_QUEUE = "dispatch.transactional"
#: The reconcile sizes of a full `make bench` (tests/bench/reconcile.py defaults to 1,000 / 10,000 / 100,000).
RECONCILE_SIZES = "1000,10000"
PG_ADMIN = os.environ.get("HEXAVOX_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    import redis

    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, f"redis://127.0.0.1:{port}"
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("private redis did not start")


def create_database() -> str:
    import psycopg

    name = f"hxbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def celery(args: list[str], env: dict[str, str], log: Path, workdir: Path = REPO) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "celery", *args], cwd=workdir, env={**os.environ, **env},
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115


def stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def rate_of(count: Callable[[], int], total: int, timeout: float,
            sample: Callable[[], None] | None = None) -> tuple[float, float]:
    """Steady rate (first to last completion) and wall time from the first completion."""
    deadline, first = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if sample is not None:
            sample()
        done = count()
        if done and first is None:
            first, first_done = time.monotonic(), done
        if done >= total:
            elapsed = time.monotonic() - first  # type: ignore[operator]
            return (total - first_done) / max(elapsed, 1e-6), elapsed
        time.sleep(0.02)
    raise RuntimeError(f"only {count()} of {total} completed in {timeout}s")


def baseline(redis_url: str, n: int, pool: list[str], logs: Path) -> float:
    """B0: pre-enqueue N no-op tasks, then start the worker and time the drain."""
    import redis

    env = {"BENCH_BROKER_URL": redis_url + "/1", "BENCH_COUNTER_URL": redis_url + "/2"}
    os.environ.update(env)
    sys.path.insert(0, str(Path(__file__).parent))
    import noop_app

    noop_app.app._pool = None  # another scenario's reconfigure() closed kombu's pools, this app's too
    noop_app.app.amqp._producer_pool = None
    counter = redis.Redis.from_url(env["BENCH_COUNTER_URL"])
    counter.delete("bench:done")
    with noop_app.app.producer_or_acquire() as producer:
        for i in range(n):
            noop_app.noop.apply_async((i,), producer=producer)
    worker = celery(["-A", "noop_app", "worker", "-Q", "bench", *pool, "--without-mingle", "--without-gossip",
                     "--without-heartbeat", "-l", "WARNING"], env, logs / "b0.log", Path(__file__).parent)
    try:
        rate, _ = rate_of(lambda: int(counter.get("bench:done") or 0), n, 300)
    finally:
        stop(worker)
    return rate


def dispatch_scenario(db_url: str, redis_url: str, n: int, latency_ms: int, pool: list[str], logs: Path
                      ) -> tuple[float, int]:
    """P1/P2/P3: N accepted messages, dispatch tasks pre-enqueued, then a worker drains them through the provider.

    Returns the steady rate and the peak number of messages DISPATCHING (sends in flight) seen while draining.
    """
    from worker.celery_app import reconfigure
    from worker.db import dispose_engines, session_scope
    from worker.publish import publish_dispatch
    from worker.runner import run_send_job
    from worker.settings import reset_settings

    from factories import make_merchant, make_tenant, sms

    env = {"HEXAVOX_DATABASE_URL": db_url, "HEXAVOX_BROKER_URL": redis_url + "/3",
           "HEXAVOX_REDIS_URL": redis_url + "/4",
           "HEXAVOX_RESULT_BACKEND": redis_url + "/5", "HEXAVOX_SIMULATOR_LATENCY_MS": str(latency_ms),
           "HEXAVOX_DB_POOL_SIZE": "20", "HEXAVOX_DB_MAX_OVERFLOW": "80", "HEXAVOX_PROVIDER_TIMEOUT": "5"}
    for key in ("HEXAVOX_PROVIDERS", "HEXAVOX_DEFAULT_PROVIDER"):  # the simulated provider, whatever ran before
        os.environ.pop(key, None)
    os.environ.update(env)
    reset_settings()
    dispose_engines()
    reconfigure()
    tag = f"{latency_ms}-{uuid.uuid4().hex[:4]}"
    tenant = make_tenant(f"bench-{tag}")
    merchant = f"m{tag}"
    make_merchant(tenant, merchant, sms=10**9)
    for first in range(0, n, 100):
        numbers = [f"+1813555{1000 + i}" for i in range(first, min(first + 100, n))]
        outcome = run_send_job("hexavox.sms.send.v1", sms(tenant, merchantId=merchant, to=numbers,
                                                          body=f"bench {tag} {first}"), str(uuid.uuid4()))
        if outcome.result["status"] != "ACCEPTED":
            raise RuntimeError(f"intake refused the benchmark's messages: {json.dumps(outcome.result)[:500]}")
        publish_dispatch(outcome.to_dispatch)
    from sqlalchemy import func, select

    from schema.models import Message

    def sent() -> int:
        with session_scope() as session:
            return int(session.scalar(select(func.count()).where(Message.status == "SENT",
                                                                 Message.merchant_id.is_not(None),
                                                                 Message.body.like(f"bench {tag} %"))) or 0)

    peak = [0]

    def in_flight() -> None:
        with session_scope() as session:
            now = int(session.scalar(select(func.count()).where(Message.status == "DISPATCHING")) or 0)
        peak[0] = max(peak[0], now)

    import redis

    queued = redis.Redis.from_url(env["HEXAVOX_BROKER_URL"]).llen(DISPATCH_QUEUE)
    with session_scope() as session:
        states = {row[0]: row[1] for row in session.execute(select(Message.status, func.count())
                                                            .group_by(Message.status))}
    print(f"  P{latency_ms}: {queued} dispatch tasks queued, message states {states}", file=sys.stderr)
    worker = celery(["-A", "worker", "worker", "-Q", DISPATCH_QUEUE, *pool, "--without-mingle", "--without-gossip",
                     "--without-heartbeat", "-l", "WARNING"], env, logs / f"p{latency_ms}.log")
    try:
        rate, _ = rate_of(sent, n, 120, in_flight)
    finally:
        stop(worker)
    return rate, peak[0]


def ratio_rows(runs: list[dict[str, float]]) -> list[tuple[str, float, float, float]]:
    """(scenario, median msgs/s, median ratio, min ratio .. ) per scenario, over the repetitions."""
    import statistics

    rows = []
    for key, label in SCENARIOS:
        rates = [run[key] for run in runs]
        ratios = [run[key] / run[BASE] for run in runs] if key != BASE else [1.0] * len(runs)
        rows.append((label, statistics.median(rates), statistics.median(ratios), min(ratios)))
    return rows


#: Scenario keys in the report, and what each measures (ratios to B0 of the same repetition).
BASE = "B0"
SCENARIOS = [
    (BASE, "B0 raw Celery no-op (one Redis INCR)"),
    ("pipeline", "full pipeline, TXN, simulated provider 0 ms (intake + dispatch)"),
    ("pipeline_queued", "full pipeline, TXN, 0 ms, without inline dispatch (a second task per message)"),
    ("pipeline_http", "full pipeline, TXN, real HTTP SMS driver against the fake provider server"),
    ("dispatch", "dispatch alone (dispatch tasks pre-enqueued), simulated provider 0 ms"),
    ("pipeline_200ms", "full pipeline, TXN, simulated provider 200 ms"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=600, help="messages per throughput scenario")
    parser.add_argument("--concurrency", type=int, default=64, help="worker threads (B0 and every scenario)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the report shows medians")
    parser.add_argument("--otp", type=int, default=100, help="OTPs per latency scenario")
    parser.add_argument("--otp-pace", type=float, default=0.05, help="seconds between two OTPs")
    parser.add_argument("--backlog", type=int, default=20000, help="MKT jobs draining during the second OTP run")
    parser.add_argument("--same-merchant", action="store_true", help="the backlog is the OTP merchant's own")
    parser.add_argument("--reconcile", default=RECONCILE_SIZES, help="pending AMBIGUOUS counts for the sweep rate")
    args = parser.parse_args()
    from pipeline import Service, fake_provider, otp_latency, pipeline, reconcile_rate, sweep_row

    pool = ["-P", "threads", "-c", str(args.concurrency)]
    folder = Path(tempfile.mkdtemp(prefix="hxbench-"))
    logs = REPO / ".bench"
    logs.mkdir(exist_ok=True)
    redis_proc, redis_url = start_redis(folder)
    db_url = create_database()
    try:
        from worker.migrate import upgrade_head

        upgrade_head(db_url)
        service = Service(db_url, redis_url, logs)
        runs: list[dict[str, float]] = []
        for rep in range(args.repeat):
            run = {BASE: baseline(redis_url, max(args.n, 3000), pool, logs)}
            run["pipeline"] = pipeline(service, args.n, pool)
            run["pipeline_queued"] = pipeline(service, args.n, pool, inline=False, name="pipeline-queued")
            with fake_provider() as providers:
                run["pipeline_http"] = pipeline(service, args.n, pool, providers=providers, name="pipeline-http")
            run["dispatch"], _ = dispatch_scenario(db_url, redis_url, args.n, 0, pool, logs)
            run["pipeline_200ms"] = pipeline(service, args.n, pool, latency_ms=200, name="pipeline-200")
            runs.append(run)
            print(f"  repetition {rep + 1}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in run.items()), file=sys.stderr)
        idle = otp_latency(service, args.otp, args.otp_pace)
        busy = otp_latency(service, args.otp, args.otp_pace, backlog=args.backlog,
                           same_merchant=args.same_merchant) if args.backlog else None
        sweeps = {n: reconcile_rate(service, n) for n in (int(x) for x in args.reconcile.split(",") if x)}
    finally:
        redis_proc.terminate()
        drop_database(db_url)
        shutil.rmtree(folder, ignore_errors=True)
    rows = ratio_rows(runs) if runs else []
    ratio_200 = [run["pipeline_200ms"] / run["pipeline"] for run in runs] or [0.0]
    import statistics

    report = {"n": args.n, "pool": " ".join(pool), "nproc": os.cpu_count(), "load": os.getloadavg(),
              "python": platform.python_version(), "runs": runs, "otp_idle": idle, "otp_backlog": busy,
              "reconcile": {n: {"per_s": round(s.per_s, 1), "ms_per_message": round(s.ms_per_message, 3),
                                "batch_read_ms": round(s.batch_read_ms, 2), "seed_s": round(s.seed_seconds, 1)}
                            for n, s in sweeps.items()}}
    print(json.dumps(report, indent=2))
    print(f"\n| scenario ({args.n} messages, `{' '.join(pool)}`, median of {args.repeat}) | msgs/s | x B0 (min) |")
    print("|---|---|---|")
    for label, rate, ratio, low in rows:
        print(f"| {label} | {rate:.0f} | {ratio:.2f}x ({low:.2f}) |")
    print(f"| 200 ms provider vs 0 ms, full pipeline | | {statistics.median(ratio_200):.2f}x ({min(ratio_200):.2f}) |")
    print(f"| OTP publish to provider, idle ({args.otp} at {1 / args.otp_pace:.0f}/s) | "
          f"p50 {idle['p50']:.0f} ms | p99 {idle['p99']:.0f} ms |")
    if busy:
        print(f"| OTP publish to provider, {args.backlog:,} MKT jobs draining | p50 {busy['p50']:.0f} ms | "
              f"p99 {busy['p99']:.0f} ms ({busy['backlog_left']:.0f} left after) |")
    for result in sweeps.values():
        print(sweep_row(result))
    return 0 if statistics.median(ratio_200) >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
