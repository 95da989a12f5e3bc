"""`make bench` campaign scenario: one list send to 100,000 opted-in members on the README's worker layout.

Measured in one run, on a private Redis and its own PostgreSQL database (see run.py for the helpers):
  B0          the Celery no-op task rate (same pool), the yardstick
  answer      time for intake to answer the list send (campaign row, planned count)
  fan-out     time until every member is expanded into a QUEUED or REFUSED message (chunks)
  drain       time until every message is SENT (dispatch through the simulated provider), when --drain
  OTP p99     intake-to-provider latency of OTP sends made every 200 ms while the campaign fans out and drains,
              on the OTP worker of the README's layout (its own queues)
Every member is checked to be accounted for exactly once (one message per member, one provider call per message).
Reported as recipients per second next to B0 (issue target: fan-out-and-send rate >= 15x B0; OTP p99 < 100 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from run import REPO, baseline, celery, create_database, drop_database, start_redis, stop  # noqa: E402

sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _env(db_url: str, redis_url: str) -> dict[str, str]:
    return {"HEXAVOX_DATABASE_URL": db_url, "HEXAVOX_BROKER_URL": redis_url + "/3",
            "HEXAVOX_REDIS_URL": redis_url + "/4", "HEXAVOX_RESULT_BACKEND": redis_url + "/5",
            "HEXAVOX_DB_POOL_SIZE": "20", "HEXAVOX_DB_MAX_OVERFLOW": "80",
            "HEXAVOX_PROVIDER_TIMEOUT": "5", "HEXAVOX_CAMPAIGN_CHUNK_SIZE": "1000",
            "HEXAVOX_CAMPAIGN_PARALLEL_CHUNKS": "2"}  # the README's layout (Campaigns)


def _setup(n: int) -> Any:
    """A merchant, a list of ``n`` members and their OPT_IN, written in bulk (fixture data, not under test)."""
    from sqlalchemy import insert

    from schema.models import Consent, ContactList, ContactListMember
    from worker.db import session_scope
    from worker.policy.merchants import load_merchant

    from factories import make_merchant, make_tenant

    tenant = make_tenant(f"bench-{uuid.uuid4().hex[:6]}")
    make_merchant(tenant, "gym-a", sms=10**9)
    numbers = [f"+1813{5550000 + i:07d}" if i < 10_000 else f"+1727{5550000 + i:07d}" for i in range(n)]
    with session_scope() as session:
        merchant = load_merchant(session, tenant.tenant_id, "gym-a")
        contact_list = ContactList(merchant_id=merchant.id, external_id="all", name="All")
        session.add(contact_list)
        session.flush()
        for first in range(0, n, 10_000):
            part = numbers[first:first + 10_000]
            session.execute(insert(ContactListMember), [{"list_id": contact_list.id, "contact": c} for c in part])
            session.execute(insert(Consent), [{"merchant_id": merchant.id, "channel": "SMS", "contact": c,
                                               "status": "OPT_IN", "source": "bench"} for c in part])
    return tenant, numbers


def _count(sql: str, **params: Any) -> int:
    from sqlalchemy import text

    from worker.db import session_scope

    with session_scope() as session:
        return int(session.execute(text(sql), params).scalar() or 0)


def _otp_probe(tenant: Any, stop_at: threading.Event, latencies: list[float]) -> None:
    """Publish an OTP through the intake queue every 200 ms; its latency is publish -> provider ledger row."""
    from worker.client import HexavoxClient

    client = HexavoxClient(tenant.key_id, tenant.secret)
    sent: dict[str, float] = {}
    i = 0
    while not stop_at.is_set():
        number = f"+1941555{i % 10000:04d}"
        request_id = client.send_sms(merchantId="gym-a", to=number, body=f"Your code is {100000 + i}",
                                     sender="GYMA", type="OTP")
        sent[request_id] = time.time() * 1000
        i += 1
        stop_at.wait(0.2)
    time.sleep(3)
    rows = _ledger_times()
    for request_id, at_ms in sent.items():
        reached = rows.get(request_id)
        if reached is not None:
            latencies.append(reached - at_ms)


def _ledger_times() -> dict[str, float]:
    """request id -> when the provider got its (OTP) message, ms since the epoch."""
    from sqlalchemy import text

    from worker.db import session_scope

    with session_scope() as session:
        rows = session.execute(text("SELECT m.request_id, min(l.created_at) FROM simulator_ledger l "
                                    "JOIN messages m ON m.id = l.message_id WHERE m.message_type = 'OTP' "
                                    "GROUP BY m.request_id")).all()
    return {str(r[0]): float(r[1]) for r in rows}


def _wait(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def _niced(nice: int, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Celery process at a lower CPU priority (``nice``), as the README suggests for bulk workers on a small box."""
    if not nice:
        return celery(args, env, log)
    return subprocess.Popen(["nice", "-n", str(nice), sys.executable, "-m", "celery", *args], cwd=REPO,
                            env={**os.environ, **env}, stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)


def scenario(db_url: str, redis_url: str, n: int, drain: bool, logs: Path, bulk_nice: int = 0,
             bulk_threads: int = 16) -> dict[str, Any]:
    from worker.celery_app import reconfigure
    from worker.db import dispose_engines
    from worker.runner import run_send_job
    from worker.settings import reset_settings

    from factories import sms

    env = _env(db_url, redis_url)
    os.environ.update(env)
    reset_settings()
    dispose_engines()
    reconfigure()
    tenant, numbers = _setup(n)
    otp = celery(["-A", "worker", "worker", "-Q", "otp,dispatch.otp", "-P", "threads", "-c", "50", "-n", "otp@%h",
                  "--without-mingle", "--without-gossip", "-l", "WARNING"], env, logs / "campaign-otp.log")
    bulk = _niced(bulk_nice, ["-A", "worker", "worker", "-Q", "bulk,dispatch.bulk", "-P", "threads",
                              "-c", str(bulk_threads), "-n", "bulk@%h", "--without-mingle", "--without-gossip",
                              "-l", "WARNING"], env, logs / "campaign-bulk.log")
    stop_probe, latencies = threading.Event(), []  # type: ignore[var-annotated]
    probe = threading.Thread(target=_otp_probe, args=(tenant, stop_probe, latencies))
    try:
        time.sleep(5)  # both workers up
        probe.start()
        started = time.monotonic()
        answer = run_send_job("hexavox.sms.send.v1", sms(tenant, to=None, listId="all", type="MKT",
                                                         body="Spring sale: 20% off"), str(uuid.uuid4())).result
        answered = time.monotonic() - started
        campaign_id = answer["campaign"]["campaignId"]
        assert answer["campaign"]["planned"] == n, answer
        in_campaign = "SELECT count(*) FROM messages WHERE request_id = :r"
        fanned = _wait(lambda: _count("SELECT count(*) FROM campaigns WHERE request_id = :r AND state = 'COMPLETED'",
                                      r=campaign_id) == 1, 1800, "fan-out") + answered
        drained = None
        if drain:
            drained = _wait(lambda: _count(in_campaign + " AND status IN ('SENT', 'DELIVERED')", r=campaign_id) == n,
                            3600, "every message sent") + fanned
    finally:
        stop_probe.set()
        if probe.is_alive():
            probe.join(60)
        stop(bulk)
        stop(otp)
    messages = _count(in_campaign, r=campaign_id)
    distinct = _count("SELECT count(DISTINCT recipient) FROM messages WHERE request_id = :r", r=campaign_id)
    twice = _count("SELECT count(*) FROM (SELECT l.message_id FROM simulator_ledger l JOIN messages m "
                   "ON m.id = l.message_id WHERE m.request_id = :r AND l.outcome = 'accepted' "
                   "GROUP BY l.message_id HAVING count(*) > 1) t", r=campaign_id)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else None
    return {"recipients": n, "answer_ms": round(answered * 1000, 1), "fan_out_s": round(fanned, 1),
            "fan_out_per_s": round(n / fanned), "drain_s": round(drained, 1) if drained else None,
            "sent_per_s": round(n / drained) if drained else None, "messages": messages,
            "distinct_recipients": distinct, "sent_twice": twice, "otp_samples": len(ordered),
            "otp_p50_ms": round(statistics.median(ordered), 1) if ordered else None,
            "otp_p99_ms": round(p99, 1) if p99 is not None else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="list members")
    parser.add_argument("--baseline-n", type=int, default=5000, help="no-op tasks for B0")
    parser.add_argument("--no-drain", dest="drain", action="store_false", help="stop once fanned out")
    parser.add_argument("--bulk-nice", type=int, default=0, help="run the bulk worker at this nice level")
    parser.add_argument("--bulk-threads", type=int, default=16, help="the bulk worker's thread pool (-c)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hxbench-campaign-"))
    logs = REPO / ".bench"
    logs.mkdir(exist_ok=True)
    redis_proc, redis_url = start_redis(folder)
    db_url = create_database()
    try:
        from worker.migrate import upgrade_head

        upgrade_head(db_url)
        b0 = baseline(redis_url, args.baseline_n, ["-P", "threads", "-c", "64"], logs)
        result = scenario(db_url, redis_url, args.n, args.drain, logs, args.bulk_nice, args.bulk_threads)
        result.update(bulk_nice=args.bulk_nice, bulk_threads=args.bulk_threads)
        result.update(B0=round(b0), at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), load=os.getloadavg(),
                      fan_out_vs_B0=round(result["fan_out_per_s"] / b0, 2),
                      sent_vs_B0=round(result["sent_per_s"] / b0, 2) if result["sent_per_s"] else None)
        print(json.dumps(result, indent=2))
        accounted = result["messages"] == result["distinct_recipients"] == args.n and result["sent_twice"] == 0
    finally:
        redis_proc.terminate()
        drop_database(db_url)
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if accounted else 1


if __name__ == "__main__":
    sys.exit(main())
