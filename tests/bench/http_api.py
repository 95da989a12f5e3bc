"""`make bench` (part 2): the HTTP door against the queue door, measured in the same run on the same services.

Both doors admit the same job, a single-recipient OTP SMS (its own body each time, so the duplicate guard never
refuses one), through the same runner and policy, and publish its dispatch; nothing consumes dispatch, so only
intake is measured. ``--clients`` closed-loop client threads per door, each waiting for its answer before sending
the next:

  HTTP   POST /api/v1/messages/sms to one ``hexavox api`` process (uvicorn); latency = request to 202 answer
  QUEUE  HexavoxClient.submit (signed envelope) to a ``celery worker -Q otp -P threads`` process, then result()
         from the Redis result backend; latency = publish to answer read back

Reported: requests/s and p50/p99 accept latency per door. The key's rate limit stays on (a high limit), so its
Redis round trip is part of the HTTP figure. Uses a private Redis on a free port and its own PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import REPO, celery, create_database, drop_database, free_port, start_redis, stop  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _closed_loop(n: int, clients: int, one: Callable[[int], None]) -> dict[str, float]:
    """Run ``one(i)`` for i in 0..n-1 from ``clients`` threads; rate and latency percentiles in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            try:
                one(i)
            except Exception as err:  # reported, and the run fails
                errors.append(f"{type(err).__name__}: {str(err)[:200]}")
                continue
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} requests failed, e.g. {errors[0]}")
    return {"requests_per_s": n / elapsed, "p50_ms": _percentile(latencies, 0.5),
            "p99_ms": _percentile(latencies, 0.99), "mean_ms": statistics.fmean(latencies)}


def _payload(merchant: str, door: str, i: int) -> dict[str, object]:
    return {"merchantId": merchant, "to": "+18135551234", "sender": "GYMA", "type": "OTP",
            "message" if door == "http" else "body": f"Your {door} code is {i:06d}"}


def _setup(env: dict[str, str]) -> tuple[str, str, str]:
    os.environ.update(env)
    from worker.migrate import upgrade_head
    from worker.settings import reset_settings

    reset_settings()
    upgrade_head(env["HEXAVOX_DATABASE_URL"])
    from factories import make_merchant, make_tenant

    tenant = make_tenant("bench-http")
    make_merchant(tenant, "gym-bench", sms=10**9)
    return tenant.key_id, tenant.secret, "gym-bench"


def _start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "api", "--port", str(port)], cwd=REPO,
                            env={**os.environ, **env}, stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError("hexavox api did not start")


def http_door(env: dict[str, str], key: tuple[str, str, str], n: int, clients: int, logs: Path) -> dict[str, float]:
    import httpx

    key_id, secret, merchant = key
    proc, base = _start_api(env, logs / "http_api.log")
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=base, timeout=30,
                                      headers={"X-API-KEY": key_id, "X-API-SECRET": secret})
        answer = local.http.post("/api/v1/messages/sms", json=_payload(merchant, "http", i))
        if answer.status_code != 202:
            raise RuntimeError(f"{answer.status_code} {answer.text[:200]}")

    try:
        one(-1)  # warm-up: connections, first imports
        return _closed_loop(n, clients, one)
    finally:
        stop(proc)


def queue_door(env: dict[str, str], key: tuple[str, str, str], n: int, clients: int, threads: int,
               logs: Path) -> dict[str, float]:
    from worker.client import HexavoxClient
    from worker.settings import load_settings

    key_id, secret, merchant = key
    worker = celery(["-A", "worker", "worker", "-Q", "otp", "-P", "threads", "-c", str(threads), "--without-mingle",
                     "--without-gossip", "--without-heartbeat", "-l", "WARNING"], env, logs / "queue_door.log")
    client = HexavoxClient(key_id, secret, load_settings())

    def one(i: int) -> None:
        answer = client.result(client.submit("hexavox.sms.send.v1", _payload(merchant, "queue", i)), timeout=60)
        if answer.get("status") != "ACCEPTED":
            raise RuntimeError(json.dumps(answer)[:200])

    try:
        one(-1)  # waits for the worker to be up
        return _closed_loop(n, clients, one)
    finally:
        client.close()
        stop(worker)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="requests per door")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop client threads per door")
    parser.add_argument("--worker-threads", type=int, default=16, help="queue door: worker thread pool size")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hxbench-http-"))
    logs = REPO / ".bench"
    logs.mkdir(exist_ok=True)
    redis_proc, redis_url = start_redis(folder)
    db_url = create_database()
    env = {"HEXAVOX_DATABASE_URL": db_url, "HEXAVOX_BROKER_URL": redis_url + "/1",
           "HEXAVOX_REDIS_URL": redis_url + "/2", "HEXAVOX_RESULT_BACKEND": redis_url + "/3",
           "HEXAVOX_DATA_DIR": str(folder / "data"),
           "HEXAVOX_API_RATE_LIMIT": "100000000", "HEXAVOX_DB_POOL_SIZE": "20",
           # Intake alone at both doors: the queue door would otherwise also send its one OTP before answering.
           "HEXAVOX_INLINE_DISPATCH": "false"}
    try:
        key = _setup(env)
        http = http_door(env, key, args.n, args.clients, logs)
        queue = queue_door(env, key, args.n, args.clients, args.worker_threads, logs)
        report = {"n": args.n, "clients": args.clients, "nproc": os.cpu_count(), "load": os.getloadavg(),
                  "python": platform.python_version(), "http": http, "queue": queue,
                  "http/queue": http["requests_per_s"] / queue["requests_per_s"]}
        print(json.dumps(report, indent=2))
        print(f"OTP accept, {args.clients} clients: HTTP {http['requests_per_s']:.0f} req/s "
              f"(p50 {http['p50_ms']:.1f} ms, p99 {http['p99_ms']:.1f} ms) | queue {queue['requests_per_s']:.0f} req/s "
              f"(p50 {queue['p50_ms']:.1f} ms, p99 {queue['p99_ms']:.1f} ms)")
    finally:
        redis_proc.terminate()
        drop_database(db_url)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
