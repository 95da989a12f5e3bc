"""`make soak`: does a worker's memory stay flat over many messages? Its RSS sampled while it handles them.

Two scenarios, each on one real Celery worker process whose resident memory (tests/bench/rss.py: VmRSS of the
process and its children) is sampled about every second against the messages SENT so far:

  campaign  one list send to ``--campaign`` (200,000) opted-in members, fanned out in chunks and drained by the
            bulk worker of the README's layout (``bulk,dispatch.bulk -P threads -c 64``) through batch dispatch;
            the list and the consents are written set-based, the list send goes through intake in this process
  txn       ``--txn`` (20,000) single-recipient TXN jobs, signed and published onto the intake queue before the
            worker starts (as the pipeline scenario of run.py), drained by one worker on the transactional queues
            (``-P threads -c 64``): intake, inline dispatch, one message at a time

Reported per scenario: RSS before the first message, at 10%, 50% and 100% of the messages, the peak, the growth
from the 10% sample (warm-up) to the end and the least-squares slope after warm-up (MiB per 100,000 messages).
Flat means growth under ``--max-growth`` (10%); the run exits 1 otherwise. The curves go to .bench/soak-*.csv.
Same private services as run.py (a Redis on a free port, a database of its own on HEXAVOX_TEST_PG_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from run import REPO, celery, create_database, drop_database, start_redis, stop  # noqa: E402

#: Seconds between two samples, and the longest a soak may take before it counts as stuck.
EVERY = 1.0
TIMEOUT = 4 * 3600
WORKER_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "WARNING"]


def _count(sql: str, **params: Any) -> int:
    from sqlalchemy import text

    from worker.db import session_scope

    with session_scope() as session:
        return int(session.execute(text(sql), params).scalar() or 0)


def _merchant_id(external: str) -> int:
    return _count("SELECT id FROM merchants WHERE external_id = :m", m=external)


def _follow(curve: Any, count: Callable[[], int], worker: Any) -> None:
    """Sample the worker's RSS against ``count()`` until every message is done (or the worker died)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done = count()
        curve.sample(done)
        if done >= curve.total:
            return
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}) after {done} of {curve.total} messages")
        if len(curve.samples) % 60 == 0:
            print(f"    {done:,} / {curve.total:,} messages, RSS {curve.samples[-1][1] / 1024:.0f} MiB",
                  file=sys.stderr)
        time.sleep(EVERY)
    raise RuntimeError(f"only {count()} of {curve.total} messages after {TIMEOUT} s")


def _started(worker: Any, curve: Any) -> None:
    """Wait until the worker has imported everything and opened its connections (its RSS stops moving)."""
    last = -1
    for _ in range(60):
        time.sleep(1)
        curve.sample(0)
        now = curve.samples[-1][1]
        if now and abs(now - last) < 256:
            break
        last = now
    if worker.poll() is not None:
        raise RuntimeError(f"the worker exited ({worker.returncode}) before any message")
    curve.started = time.monotonic()  # times and rates from here: the worker's start-up is not counted
    curve.samples[:] = [(0, curve.samples[-1][1], 0.0)]


def campaign_soak(env: dict[str, str], n: int, logs: Path) -> dict[str, Any]:
    """One list send to ``n`` members drained by the bulk worker; its RSS curve and the campaign's accounting."""
    from pipeline import BULK_WORKER, merchant, use
    from rss import RssCurve
    from sqlalchemy import text

    from schema.models import ContactList
    from worker.db import session_scope
    from worker.runner import run_send_job

    from factories import sms

    use(env)
    tag = f"soak-{uuid.uuid4().hex[:6]}"
    tenant, external = merchant(tag)
    internal = _merchant_id(external)
    began = time.monotonic()
    with session_scope() as session:  # fixture data, not under test: written set-based
        contact_list = ContactList(merchant_id=internal, external_id="all", name="All")
        session.add(contact_list)
        session.flush()
        list_id = contact_list.id
        contact = "'+1727' || (5550000 + i)"
        session.execute(text(f"INSERT INTO contact_list_members (list_id, contact) "  # noqa: S608
                             f"SELECT :l, {contact} FROM generate_series(0, :n - 1) AS i"), {"l": list_id, "n": n})
        session.execute(text(f"INSERT INTO consents (merchant_id, channel, contact, status, source) "  # noqa: S608
                             f"SELECT :m, 'SMS', {contact}, 'OPT_IN', 'bench' FROM generate_series(0, :n - 1) AS i"),
                        {"m": internal, "n": n})
    seeded = time.monotonic() - began
    worker = celery(["-A", "worker", "worker", *BULK_WORKER, "-n", "bulk@%h", *WORKER_FLAGS], env,
                    logs / "soak-bulk.log")
    try:
        curve = RssCurve(worker.pid, n)
        _started(worker, curve)
        answer = run_send_job("hexavox.sms.send.v1", sms(tenant, merchantId=external, to=None, listId="all",
                                                         type="MKT", body="Spring sale: 20% off"),
                              str(uuid.uuid4())).result
        campaign = answer["campaign"]["campaignId"]
        if answer["campaign"]["planned"] != n:
            raise RuntimeError(f"the list send planned {answer['campaign']['planned']} of {n}")
        _follow(curve, lambda: _count("SELECT count(*) FROM messages WHERE request_id = :r AND status = 'SENT'",
                                      r=campaign), worker)
    finally:
        stop(worker)
    curve.write_csv(logs / "soak-campaign.csv")
    twice = _count("SELECT count(*) FROM (SELECT l.message_id FROM simulator_ledger l JOIN messages m "
                   "ON m.id = l.message_id WHERE m.request_id = :r AND l.outcome = 'accepted' "
                   "GROUP BY l.message_id HAVING count(*) > 1) t", r=campaign)
    return {"messages": n, "seed_s": round(seeded, 1), "sent_per_s": round(n / max(curve.samples[-1][2], 1e-9)),
            "distinct_recipients": _count("SELECT count(DISTINCT recipient) FROM messages WHERE request_id = :r",
                                          r=campaign),
            "sent_twice": twice, **curve.summary()}


def txn_soak(env: dict[str, str], n: int, logs: Path) -> dict[str, Any]:
    """``n`` single TXN jobs published first, then drained by one worker; its RSS curve."""
    from pipeline import merchant, publish, use
    from rss import RssCurve

    use(env)
    tag = f"soak-txn-{uuid.uuid4().hex[:6]}"
    tenant, external = merchant(tag)
    internal = _merchant_id(external)
    began = time.monotonic()
    publish(tenant, external, tag, n, "TXN")
    published = time.monotonic() - began
    worker = celery(["-A", "worker", "worker", "-Q", "transactional,dispatch.transactional", "-P", "threads",
                     "-c", "64", *WORKER_FLAGS], env, logs / "soak-txn.log")
    try:
        curve = RssCurve(worker.pid, n)
        _started(worker, curve)
        _follow(curve, lambda: _count("SELECT count(*) FROM messages WHERE merchant_id = :m AND status = 'SENT'",
                                      m=internal), worker)
    finally:
        stop(worker)
    curve.write_csv(logs / "soak-txn.csv")
    return {"messages": n, "publish_s": round(published, 1),
            "sent_per_s": round(n / max(curve.samples[-1][2], 1e-9), 1), **curve.summary()}


def row(name: str, result: dict[str, Any]) -> str:
    """The report's table row for one soak."""
    return (f"| {name} | {result['messages']:,} | {result['idle_mib']} | {result['p10_mib']} | {result['p50_mib']} | "
            f"{result['p100_mib']} | {result['peak_mib']} | {100 * result['growth_after_warmup']:+.1f}% | "
            f"{result['slope_mib_per_100k']:+.1f} | {result['sent_per_s']}/s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", type=int, default=200_000, help="list members of the campaign soak (0: skip)")
    parser.add_argument("--txn", type=int, default=20_000, help="single TXN jobs of the pipeline soak (0: skip)")
    parser.add_argument("--max-growth", type=float, default=0.10,
                        help="exit 1 when RSS grows more than this fraction after warm-up")
    args = parser.parse_args()
    from pipeline import Service

    folder = Path(tempfile.mkdtemp(prefix="hxbench-soak-"))
    logs = REPO / ".bench"
    logs.mkdir(exist_ok=True)
    redis_proc, redis_url = start_redis(folder)
    db_url = create_database()
    results: dict[str, dict[str, Any]] = {}
    load = [os.getloadavg()]
    try:
        from worker.migrate import upgrade_head

        upgrade_head(db_url)
        env = Service(db_url, redis_url, logs).env(HEXAVOX_CAMPAIGN_CHUNK_SIZE="1000")
        if args.campaign:
            results["campaign"] = campaign_soak(env, args.campaign, logs)
            load.append(os.getloadavg())
            print(f"  campaign: {json.dumps(results['campaign'])}", file=sys.stderr)
        if args.txn:
            results["txn"] = txn_soak(env, args.txn, logs)
            load.append(os.getloadavg())
    finally:
        redis_proc.terminate()
        drop_database(db_url)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"load": load, "nproc": os.cpu_count(), **results}, indent=2))
    print("\n| worker RSS (MiB) | messages | idle | 10% | 50% | 100% | peak | growth after 10% | "
          "MiB / 100k after 10% | rate |\n|---|---|---|---|---|---|---|---|---|---|")
    names = {"campaign": "bulk worker, one campaign, batch dispatch", "txn": "transactional worker, single TXN jobs"}
    for key, result in results.items():
        print(row(names[key], result))
    flat = all(r["growth_after_warmup"] < args.max_growth for r in results.values())
    accounted = "campaign" not in results or (results["campaign"]["sent_twice"] == 0 and
                                              results["campaign"]["distinct_recipients"] == args.campaign)
    return 0 if flat and accounted else 1


if __name__ == "__main__":
    sys.exit(main())
