"""`make bench`: dispatch throughput against a Celery no-op baseline measured in the same run.

Scenarios (docs/performance.md describes the method):
  B0   Celery no-op task, same pool and concurrency, one Redis INCR each
  P1   full dispatch path (claim, simulated provider with ledger, record) at 0 ms provider latency
  P2   the same at 200 ms provider latency: the worker must keep enough sends in flight
  P3   a slow provider (--wide-latency-ms, 1,500 ms) on a wider thread pool (--wide-concurrency, 256): how many
       sends one worker keeps in flight when the provider, not the CPU, is the bottleneck
Reported as msgs/s and ratios: P1/B0, and P2/P1 (issue target: P2/P1 >= 0.8; the run exits 1 below it), with
the peak number of sends in flight (messages DISPATCHING: claimed, waiting on the provider) sampled while draining.

Uses a private Redis on a free port and its own PostgreSQL database on the local server.
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
from typing import TypedDict

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
#: Where the TXN messages of the dispatch scenarios wait (dispatch has queues of its own, apart from intake).
DISPATCH_QUEUE = "dispatch.transactional"
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
        states = dict(session.execute(select(Message.status, func.count()).group_by(Message.status)).tuples().all())
    print(f"  P{latency_ms}: {queued} dispatch tasks queued, message states {states}", file=sys.stderr)
    worker = celery(["-A", "worker", "worker", "-Q", DISPATCH_QUEUE, *pool, "--without-mingle", "--without-gossip",
                     "--without-heartbeat", "-l", "WARNING"], env, logs / f"p{latency_ms}.log")
    try:
        rate, _ = rate_of(sent, n, 120, in_flight)
    finally:
        stop(worker)
    return rate, peak[0]


#: One run's figures: throughput in messages/s, their ratios, and the peak of messages in flight per scenario.
RunFigures = TypedDict("RunFigures", {"B0": float, "P1_0ms": float, "P2_200ms": float, "P3_slow_wide": float,
                                      "P1/B0": float, "P2/P1": float, "P3/P1": float, "in_flight_peak": dict[str, int]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="messages per scenario")
    parser.add_argument("--concurrency", type=int, default=64, help="worker threads")
    parser.add_argument("--wide-concurrency", type=int, default=256, help="worker threads of P3")
    parser.add_argument("--wide-latency-ms", type=int, default=1500, help="provider latency of P3")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    pool = ["-P", "threads", "-c", str(args.concurrency)]
    wide = ["-P", "threads", "-c", str(args.wide_concurrency)]
    folder = Path(tempfile.mkdtemp(prefix="hxbench-"))
    logs = REPO / ".bench"
    logs.mkdir(exist_ok=True)
    redis_proc, redis_url = start_redis(folder)
    db_url = create_database()
    try:
        from worker.migrate import upgrade_head

        upgrade_head(db_url)
        results: list[RunFigures] = []
        for _ in range(args.repeat):
            b0 = baseline(redis_url, args.n, pool, logs)
            p1, p1_flight = dispatch_scenario(db_url, redis_url, args.n, 0, pool, logs)
            p2, p2_flight = dispatch_scenario(db_url, redis_url, args.n, 200, pool, logs)
            p3, p3_flight = dispatch_scenario(db_url, redis_url, args.n, args.wide_latency_ms, wide, logs)
            results.append({"B0": b0, "P1_0ms": p1, "P2_200ms": p2, "P3_slow_wide": p3, "P1/B0": p1 / b0,
                            "P2/P1": p2 / p1, "P3/P1": p3 / p1, "in_flight_peak": {"P1": p1_flight, "P2": p2_flight,
                                                                                  "P3": p3_flight}})
        report = {"n": args.n, "pool": " ".join(pool), "nproc": os.cpu_count(), "load": os.getloadavg(),
                  "python": platform.python_version(), "runs": results}
        print(json.dumps(report, indent=2))
        for run in results:
            flight = run["in_flight_peak"]
            print(f"B0 {run['B0']:.0f}/s | P1 0 ms {run['P1_0ms']:.0f}/s (P1/B0 {run['P1/B0']:.2f}) | "
                  f"P2 200 ms {run['P2_200ms']:.0f}/s (P2/P1 {run['P2/P1']:.2f}, peak in flight {flight['P2']}) | "
                  f"P3 {args.wide_latency_ms} ms x{args.wide_concurrency} {run['P3_slow_wide']:.0f}/s "
                  f"(P3/P1 {run['P3/P1']:.2f}, peak in flight {flight['P3']})")
    finally:
        redis_proc.terminate()
        drop_database(db_url)
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(run["P2/P1"] >= 0.8 for run in results) else 1


if __name__ == "__main__":
    sys.exit(main())
