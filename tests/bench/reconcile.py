"""The reconcile scenario alone: one sweep over 1,000, 10,000 and 100,000 AMBIGUOUS messages, cost per message.

A backlog of AMBIGUOUS messages the simulated provider has (what a crash after the provider call leaves behind)
is seeded set-based (tests/bench/pipeline.py, seed_ambiguous), then :func:`worker.policy.reconcile.sweep` runs in
this process until every one is settled; only the sweep is timed. The sweep should cost the same per message at
every size: each batch is the oldest 200 due rows, read through ``ix_messages_status_updated``, and each message
one indexed ledger lookup and one transition. Also reported: the median time of that batch read before the sweep,
the part that would grow with the backlog if it were not served by the index, and every ``--every`` seconds inside
each sweep the messages left, the cost per message since the last sample and the load average: within one sweep,
a cost that grows with the backlog falls as the backlog drains, one that follows the machine's load does not.

Same private services as run.py (a Redis on a free port, a database of its own on HEXAVOX_TEST_PG_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from run import REPO, create_database, drop_database, start_redis  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="pending AMBIGUOUS counts, one sweep each")
    parser.add_argument("--max-spread", type=float, default=1.5,
                        help="exit 1 when the largest size costs more than this times the smallest per message")
    parser.add_argument("--every", type=float, default=20.0,
                        help="seconds between two samples of what is left inside each sweep (0: none)")
    args = parser.parse_args()
    from pipeline import Service, reconcile_rate, sweep_row

    folder = Path(tempfile.mkdtemp(prefix="hxbench-reconcile-"))
    logs = REPO / ".bench"
    logs.mkdir(exist_ok=True)
    redis_proc, redis_url = start_redis(folder)
    db_url = create_database()
    load = [os.getloadavg()]
    try:
        from worker.migrate import upgrade_head

        upgrade_head(db_url)
        service = Service(db_url, redis_url, logs)
        sweeps = []
        for n in (int(x) for x in args.sizes.split(",") if x):
            sweeps.append(reconcile_rate(service, n, args.every))
            load.append(os.getloadavg())
            print(f"  {sweep_row(sweeps[-1])}", file=sys.stderr)
    finally:
        redis_proc.terminate()
        drop_database(db_url)
        shutil.rmtree(folder, ignore_errors=True)
    spread = sweeps[-1].ms_per_message / sweeps[0].ms_per_message
    print(json.dumps({"load": load, "spread": round(spread, 2), "sizes": [
        {"pending": s.pending, "settled": s.settled, "sweep_s": round(s.seconds, 1), "per_s": round(s.per_s, 1),
         "ms_per_message": round(s.ms_per_message, 3), "batch_read_ms": round(s.batch_read_ms, 2),
         "seed_s": round(s.seed_seconds, 1), "windows (pending, ms a message, load)": s.windows}
        for s in sweeps]}))
    print("\n| reconcile size | msgs/s | cost |\n|---|---|---|")
    for result in sweeps:
        print(sweep_row(result))
    print(f"\nlargest / smallest size, ms a message: {spread:.2f}x (flat when <= {args.max_spread})")
    return 0 if spread <= args.max_spread else 1


if __name__ == "__main__":
    sys.exit(main())
