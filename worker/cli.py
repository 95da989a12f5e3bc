"""The `hexavox` command: the common jobs of running the service.

    hexavox demo                      run the embedded demo (SQLite + local-file broker, no servers)
    hexavox db upgrade|downgrade      apply or undo the migrations on HEXAVOX_DATABASE_URL
    hexavox worker|beat|flower [...]  start Celery (extra arguments are passed through); flower outside
                                      development only with --basic-auth/FLOWER_BASIC_AUTH or OAuth
    hexavox tenant create NAME [--channels SMS,VOICE] [--jobs hexavox.sms.send.v1,...]
                                      create a tenant and print a new API key (shown once); default: all
    hexavox tenant keys list NAME | create NAME [rules] | revoke KEY_ID | rotate KEY_ID [--grace S]
                                      a tenant's API keys (rules: --channels --jobs --merchants --cidrs --rate)
    hexavox send TASK JSON            enqueue one job with HEXAVOX_KEY_ID / HEXAVOX_KEY_SECRET
    hexavox status REQUEST_ID         a request's answer and its messages' current states
    hexavox catalogue [--markdown]    the error-code catalogue
    hexavox contract [--write DIR]    the JSON Schema of every job
    hexavox report usage --from D --to D [--merchant M] [--tenant NAME]   usage report (reads the database)
    hexavox alerts [--tenant NAME] [--merchant M]                         alerts, newest first (incl. system ones)
    hexavox campaign list|show|pause|resume|cancel|watch [ID]   campaigns: counts, actions, a live progress bar
    hexavox web [--host H] [--port P]  the delivery-report receiver for provider webhooks (default 127.0.0.1:8080)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from worker.campaign_cli import add_campaign_parser, run_campaign_command
from worker.keys_cli import add_tenant_parser, run_tenant_command

__all__ = ["main"]


def _celery(kind: str, extra: Sequence[str]) -> int:
    from worker.errors import ConfigurationError
    from worker.launch import check_flower_auth, prepare_metrics_dir
    from worker.queues import ALL_QUEUES
    from worker.settings import get_settings

    args = ["celery", "-A", "worker", kind, *extra]
    if kind == "worker" and not any(a in ("-Q", "--queues") for a in extra):
        args += ["-Q", ",".join(ALL_QUEUES)]
    try:
        settings = get_settings()
        if kind == "flower":
            check_flower_auth(extra, settings.environment, os.environ)
    except ConfigurationError as err:
        print(f"hexavox: {err}", file=sys.stderr)
        return 2
    if kind == "worker" and settings.metrics_port:
        prepare_metrics_dir(os.environ)
    os.execvp(sys.executable, [sys.executable, "-m", *args])
    return 0  # not reached


def _db(action: str) -> int:
    from worker.migrate import downgrade_base, upgrade_head

    (upgrade_head if action == "upgrade" else downgrade_base)()
    print(f"database {action} done")
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


def _read_as_tenant(tenant: str | None, read: Callable[[Any, int], object]) -> int:
    """Run ``read(session, tenant_id)`` for an operator command and print its JSON; refusals exit 1."""
    from worker.db import session_scope
    from worker.errors import Refusal
    from worker.policy.usage import resolve_tenant

    try:
        with session_scope() as session:
            print(json.dumps(read(session, resolve_tenant(session, tenant)), indent=2, default=str))
    except (LookupError, Refusal) as err:
        print(f"hexavox: {err}", file=sys.stderr)
        return 1
    return 0


def _rotate_webhook_secret(args: argparse.Namespace) -> int:
    """A new dlrUrl signing secret; the newest ``--keep`` secrets sign, so the old one verifies until it drops out."""
    from worker.policy.callbacks_out import rotate_secret
    from worker.policy.merchants import load_merchant

    def rotate(session: Any, tenant_id: int) -> dict[str, object]:
        merchant = load_merchant(session, tenant_id, args.merchant_id, must_be_active=False)
        secret = rotate_secret(session, merchant.id, keep=args.keep)
        return {"merchantId": args.merchant_id, "webhookSecret": secret, "signingSecrets": args.keep}

    return _read_as_tenant(args.tenant, rotate)


def _web(host: str, port: int) -> int:
    from worker.web import serve

    return serve(host, port)


def _report(args: argparse.Namespace) -> int:
    from worker.policy.usage import usage_report
    from worker.settings import get_settings

    settings = get_settings()
    return _read_as_tenant(args.tenant, lambda s, tenant_id: usage_report(
        s, tenant_id, args.merchant, args.date_from, args.date_to, prices=settings.unit_prices,
        markup_percent=settings.markup_percent))


def _alerts(args: argparse.Namespace) -> int:
    from worker.policy.alerts import ALL_SYSTEM_KINDS, list_alerts

    return _read_as_tenant(args.tenant, lambda s, tenant_id: list_alerts(
        s, tenant_id, args.merchant, args.limit, system_kinds=ALL_SYSTEM_KINDS))


def _report_parser(sub: Any) -> None:
    usage = sub.add_parser("report").add_subparsers(dest="report", required=True).add_parser("usage")
    usage.add_argument("--from", dest="date_from", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    usage.add_argument("--to", dest="date_to", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    usage.add_argument("--merchant", help="merchantId; default: every merchant of the tenant")
    usage.add_argument("--tenant", help="tenant name; default: the only tenant")
    alerts = sub.add_parser("alerts")
    alerts.add_argument("--tenant", help="tenant name; default: the only tenant")
    alerts.add_argument("--merchant", help="merchantId")
    alerts.add_argument("--limit", type=int, default=100)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hexavox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo")
    sub.add_parser("db").add_argument("action", choices=["upgrade", "downgrade"])
    for kind in ("worker", "beat", "flower"):
        sub.add_parser(kind).add_argument("extra", nargs=argparse.REMAINDER)
    add_tenant_parser(sub)
    merchant = sub.add_parser("merchant")
    merchant.add_argument("action", choices=["rotate-webhook-secret"])
    merchant.add_argument("merchant_id")
    merchant.add_argument("--tenant", help="tenant name; default: the only tenant")
    merchant.add_argument("--keep", type=int, choices=[1, 2], default=2,
                          help="secrets that sign from now on: 2 keeps the old one verifying, 1 revokes it at once")
    send = sub.add_parser("send")
    send.add_argument("task")
    send.add_argument("payload")
    sub.add_parser("status").add_argument("request_id")
    sub.add_parser("catalogue").add_argument("--markdown", action="store_true")
    sub.add_parser("contract").add_argument("--write", metavar="DIR")
    _report_parser(sub)
    add_campaign_parser(sub)
    web = sub.add_parser("web")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("worker", "beat", "flower") and argv[1:2] not in (["-h"], ["--help"]):
        # Everything after the kind is Celery's (argparse's REMAINDER refuses a first argument like --port=...).
        return _celery(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from worker.demo import run_demo

        return run_demo()
    if args.command in ("worker", "beat", "flower"):
        return _celery(args.command, args.extra)
    handlers = {
        "db": lambda: _db(args.action), "tenant": lambda: run_tenant_command(args),
        "send": lambda: _send(args.task, args.payload), "status": lambda: _status(args.request_id),
        "catalogue": lambda: _catalogue(args.markdown), "contract": lambda: _contract(args.write),
        "report": lambda: _report(args), "alerts": lambda: _alerts(args),
        "web": lambda: _web(args.host, args.port), "merchant": lambda: _rotate_webhook_secret(args),
        "campaign": lambda: run_campaign_command(args),
    }
    return int(handlers[args.command]())


if __name__ == "__main__":
    sys.exit(main())
