"""The `hexavox` command: the common jobs of running the service.

    hexavox demo                      run the embedded demo (SQLite + local-file broker, no servers)
    hexavox db upgrade|downgrade      apply or undo the migrations on HEXAVOX_DATABASE_URL
    hexavox worker|beat|flower [...]  start Celery (extra arguments are passed through)
    hexavox tenant create NAME        create a tenant and print a new API key (shown once)
    hexavox send TASK JSON            enqueue one job with HEXAVOX_KEY_ID / HEXAVOX_KEY_SECRET
    hexavox status REQUEST_ID         a request's answer and its messages' current states
    hexavox catalogue [--markdown]    the error-code catalogue
    hexavox contract [--write DIR]    the JSON Schema of every job
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _celery(kind: str, extra: Sequence[str]) -> int:
    from worker.queues import ALL_QUEUES

    args = ["celery", "-A", "worker", kind, *extra]
    if kind == "worker" and not any(a in ("-Q", "--queues") for a in extra):
        args += ["-Q", ",".join(ALL_QUEUES)]
    os.execvp(sys.executable, [sys.executable, "-m", *args])
    return 0  # not reached


def _db(action: str) -> int:
    from worker.migrate import downgrade_base, upgrade_head

    (upgrade_head if action == "upgrade" else downgrade_base)()
    print(f"database {action} done")
    return 0


def _tenant(name: str) -> int:
    from worker.db import session_scope
    from worker.tenants import create_tenant

    with session_scope() as session:
        tenant_id, key_id, secret = create_tenant(session, name)
    print(json.dumps({"tenantId": tenant_id, "keyId": key_id, "secret": secret}))
    return 0


def _send(task: str, raw: str) -> int:
    from worker.client import HexavoxClient

    client = HexavoxClient(os.environ["HEXAVOX_KEY_ID"], os.environ["HEXAVOX_KEY_SECRET"])
    print(client.submit(task, json.loads(raw)))
    return 0


def _status(request_id: str) -> int:
    from worker.status import request_status

    found = request_status(request_id)
    print(json.dumps(found, indent=2, default=str) if found else f"unknown request {request_id}")
    return 0 if found else 1


def _catalogue(markdown: bool) -> int:
    from worker.catalogue import CATALOGUE, markdown_table

    if markdown:
        print(markdown_table(), end="")
    else:
        for entry in CATALOGUE.values():
            print(f"{entry.code.value}  {entry.code.name:32} {entry.description}")
    return 0


def _contract(write: str | None) -> int:
    from worker.contract import json_schemas

    schemas = json_schemas()
    if write is None:
        print(json.dumps(schemas, indent=2, sort_keys=True))
        return 0
    folder = Path(write)
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (folder / f"{name}.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(schemas)} schemas to {folder}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hexavox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo")
    sub.add_parser("db").add_argument("action", choices=["upgrade", "downgrade"])
    for kind in ("worker", "beat", "flower"):
        sub.add_parser(kind).add_argument("extra", nargs=argparse.REMAINDER)
    tenant = sub.add_parser("tenant")
    tenant.add_argument("action", choices=["create"])
    tenant.add_argument("name")
    send = sub.add_parser("send")
    send.add_argument("task")
    send.add_argument("payload")
    sub.add_parser("status").add_argument("request_id")
    sub.add_parser("catalogue").add_argument("--markdown", action="store_true")
    sub.add_parser("contract").add_argument("--write", metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from worker.demo import run_demo

        return run_demo()
    if args.command in ("worker", "beat", "flower"):
        return _celery(args.command, args.extra)
    handlers = {
        "db": lambda: _db(args.action), "tenant": lambda: _tenant(args.name),
        "send": lambda: _send(args.task, args.payload), "status": lambda: _status(args.request_id),
        "catalogue": lambda: _catalogue(args.markdown), "contract": lambda: _contract(args.write),
    }
    return int(handlers[args.command]())


if __name__ == "__main__":
    sys.exit(main())
