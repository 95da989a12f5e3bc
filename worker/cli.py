"""The `hexavox` command: the common jobs of running the service.

    hexavox demo                      run the embedded demo (SQLite + local-file broker, no servers)
    hexavox db upgrade|downgrade      apply or undo the migrations as HEXAVOX_MIGRATION_DATABASE_URL (the owner)
    hexavox worker|beat|flower [...]  start Celery (extra arguments are passed through); flower outside
                                      development only with --basic-auth/FLOWER_BASIC_AUTH or OAuth
    hexavox tenant create NAME [--channels SMS,VOICE] [--jobs hexavox.sms.send.v1,...]
                                      create a tenant and print a new API key (shown once); default: all
    hexavox tenant keys list NAME | create NAME [rules] | revoke KEY_ID | rotate KEY_ID [--grace S]
                                      a tenant's API keys (rules: --channels --jobs --merchants --cidrs --rate)
    hexavox send TASK JSON            enqueue one job with HEXAVOX_KEY_ID / HEXAVOX_KEY_SECRET
    hexavox status REQUEST_ID         a request's answer and its messages' current states
    hexavox catalogue [--markdown]    the error-code catalogue
    hexavox contract [--write DIR]    the JSON Schema of every job; with --write also the HTTP API's OpenAPI document
                                      (openapi.json, openapi.yaml) in DIR's parent folder
    hexavox report usage --from D --to D [--merchant M] [--tenant NAME]   usage report (reads the database)
    hexavox alerts [--tenant NAME] [--merchant M]                         alerts, newest first (incl. system ones)
    hexavox merchant rotate-webhook-secret MERCHANT [--tenant NAME] [--keep 1|2]
                                      dlrUrl signing secrets (job answers only carry a fingerprint)
    hexavox billing confirm PAYMENT_ID --amount-cents N [--currency USD] | billing fail PAYMENT_ID
                                      settle a billing upgrade's payment (tenant keys cannot)
    hexavox campaign list|show|pause|resume|cancel|watch [ID]   campaigns: counts, actions, a live progress bar
    hexavox web [--host H] [--port P]  the delivery-report receiver for provider webhooks (default 127.0.0.1:8080)
    hexavox merchant create ID [--sms N --voice N --email N --name N --timezone TZ --countries US,GB --inactive]
    hexavox merchant show ID [--webhook-secret] | list | set-limits ID [--sms N] [--voice N] [--email N]
    hexavox merchant rotate-webhook-secret ID [--keep 1|2]   merchants (all take --tenant NAME)
    hexavox api [--host H] [--port P]  the HTTP API /api/v1 for tenants (default 127.0.0.1:8000)
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
from worker.cli_merchant import add_merchant_parser, run_merchant
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
    from worker.cli_database import migrate
    from worker.migrate import current_revision, downgrade_base, upgrade_head
    from worker.settings import get_settings

    run = upgrade_head if action == "upgrade" else downgrade_base
    print(migrate(action, get_settings().database_url, run, current_revision))
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
    from worker.catalogue import CATALOGUE, markdown_table, seed_000_table

    if markdown:
        print(markdown_table(), end="")
        print("\nSeed-000 codes the service answers differently:\n")
        print(seed_000_table(), end="")
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
    from api.openapi import write_openapi

    for path in write_openapi(folder.resolve().parent):
        print(f"wrote the HTTP API's OpenAPI document to {path}")
    return 0


def _read_as_tenant(tenant: str | None, read: Callable[[Any, int], object]) -> int:
    """Run ``read(session, tenant_id)`` for an operator command and print its JSON; refusals exit 1."""
    from worker.db import session_scope
    from worker.errors import Refusal
    from worker.policy.usage import resolve_tenant

    try:
        with session_scope() as session:
            answer = read(session, resolve_tenant(session, tenant))
    except (LookupError, Refusal) as err:
        print(f"hexavox: {err}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, default=str))  # after the commit: a closed pipe cannot undo the change
    return 0


def _billing(args: argparse.Namespace) -> int:
    """The operator's payment confirmation: the same check and single credit as the payment webhook."""
    from worker.db import session_scope
    from worker.errors import Refusal
    from worker.policy.billing import confirm_payment

    succeeded = args.action == "confirm"
    if succeeded and args.amount_cents is None:
        print("hexavox: billing confirm needs --amount-cents (what was paid)", file=sys.stderr)
        return 2
    try:
        with session_scope() as session:
            result = confirm_payment(session, args.payment_id, succeeded=succeeded, amount_cents=args.amount_cents,
                                     currency=args.currency)
    except Refusal as err:
        print(f"hexavox: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _web(host: str, port: int) -> int:
    from worker.settings import get_settings
    from worker.startup import check_at_start
    from worker.web import serve

    check_at_start(get_settings())

    return serve(host, port)


def _api(host: str, port: int) -> int:
    from api.app import serve

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
    add_merchant_parser(sub, "tenant name; default: the only tenant")
    billing = sub.add_parser("billing")
    billing.add_argument("action", choices=["confirm", "fail"])
    billing.add_argument("payment_id", help="the paymentId of the upgrade answer")
    billing.add_argument("--amount-cents", type=int, help="what was paid; must equal the upgrade's amountCents")
    billing.add_argument("--currency", default="USD")
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
    api = sub.add_parser("api")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
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
        return _guarded(args.command, lambda: _celery(args.command, args.extra))
    handlers = {
        "db": lambda: _db(args.action), "tenant": lambda: run_tenant_command(args),
        "send": lambda: _send(args.task, args.payload), "status": lambda: _status(args.request_id),
        "catalogue": lambda: _catalogue(args.markdown), "contract": lambda: _contract(args.write),
        "report": lambda: _report(args), "alerts": lambda: _alerts(args),
        "web": lambda: _web(args.host, args.port), "merchant": lambda: run_merchant(args, _read_as_tenant),
        "billing": lambda: _billing(args),
        "api": lambda: _api(args.host, args.port),
        "campaign": lambda: run_campaign_command(args),
    }
    return _guarded(args.command, handlers[args.command])


#: Commands that read or write the service's database (and so need one that exists).
_DATABASE_COMMANDS = frozenset({"tenant", "merchant", "status", "report", "alerts"})


def _guarded(command: str, handler: Callable[[], int]) -> int:
    """Run a command; a bad configuration or an unusable database is one line on stderr, never a traceback."""
    from sqlalchemy.exc import DBAPIError

    from worker.cli_database import DatabaseProblem, explain, require_existing_database
    from worker.errors import ConfigurationError
    from worker.settings import get_settings

    try:
        if command in _DATABASE_COMMANDS:
            require_existing_database(get_settings())
        return handler()
    except ConfigurationError as err:
        print(f"hexavox: configuration error: {err}", file=sys.stderr)
        return 2
    except DatabaseProblem as err:
        print(f"hexavox: {err}", file=sys.stderr)
        return 1
    except DBAPIError as err:
        print(f"hexavox: {explain(err, get_settings().database_url)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
