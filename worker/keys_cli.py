"""`hexavox tenant ...`: tenants and their API keys, for the operator (prints JSON; a secret is shown once)."""

from __future__ import annotations

import argparse
import ipaddress
import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["add_tenant_parser", "run_tenant_command"]


def _names(known: Callable[[], Sequence[str]], what: str,
           normalize: Callable[[str], str] = str) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated key rule: each name exactly as the key's rules match it, or ``*``.

    A misspelt name would otherwise be stored silently, and the key refused (E802) for it at send time.
    """
    def parse(raw: str) -> list[str]:
        names = list(dict.fromkeys(normalize(part.strip()) for part in raw.split(",") if part.strip()))
        unknown = [n for n in names if n != "*" and n not in known()]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or repr(raw)}; "
                                             f"use * or some of: {', '.join(known())}")
        return names
    return parse


def _cidrs(raw: str) -> list[str]:
    try:
        return [str(ipaddress.ip_network(part.strip(), strict=False)) for part in raw.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _merchants(raw: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _job_names() -> list[str]:
    from worker.contract import JOBS
    from worker.policy.duplicates import WAIVE_RULE

    return [*JOBS, WAIVE_RULE]


def _channel_names() -> list[str]:
    from schema.states import Channel

    return [channel.value for channel in Channel]


def _rule_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channels", type=_names(_channel_names, "channel", str.upper), metavar="SMS,VOICE,EMAIL",
                        help="channels the key may use (default: all)")
    parser.add_argument("--jobs", type=_names(_job_names, "job"), metavar="TASK,...",
                        help="task names the key may run, e.g. hexavox.sms.send.v1 (default: all)")
    parser.add_argument("--merchants", type=_merchants, metavar="ID,...",
                        help="merchantIds the key may act for (default: every merchant of the tenant)")
    parser.add_argument("--cidrs", type=_cidrs, metavar="CIDR,...",
                        help="networks the HTTP API accepts the key from (default: anywhere)")
    parser.add_argument("--rate", type=int, metavar="PER_MINUTE", help="HTTP requests per minute (default: settings)")


def add_tenant_parser(sub: Any) -> None:
    tenant = sub.add_parser("tenant").add_subparsers(dest="tenant_action", required=True)
    create = tenant.add_parser("create", help="create a tenant and print a new API key (shown once)")
    create.add_argument("name")
    _rule_arguments(create)
    keys = tenant.add_parser("keys").add_subparsers(dest="keys_action", required=True)
    keys.add_parser("list", help="a tenant's keys and their rules").add_argument("name")
    key_create = keys.add_parser("create", help="issue another key for a tenant (secret shown once)")
    key_create.add_argument("name")
    _rule_arguments(key_create)
    keys.add_parser("revoke", help="refuse a key from the next job on").add_argument("key_id")
    rotate = keys.add_parser("rotate", help="a new key with the same rules; the old one works for --grace seconds")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=int, default=86400, metavar="SECONDS",
                        help="how long the old key keeps working (default 86400; 0 revokes it at once)")


def run_tenant_command(args: argparse.Namespace) -> int:
    from worker.db import session_scope
    from worker.errors import Refusal
    from worker.tenants import KeyRules, create_key, create_tenant, list_keys, revoke_key, rotate_key

    try:
        with session_scope() as session:
            if args.tenant_action == "create":
                tenant_id, key_id, secret = create_tenant(session, args.name, channels=args.channels, jobs=args.jobs)
                out: Any = {"tenantId": tenant_id, "keyId": key_id, "secret": secret,
                            "channels": args.channels or ["*"], "jobs": args.jobs or ["*"]}
            elif args.keys_action == "list":
                out = list_keys(session, args.name)
            elif args.keys_action == "create":
                rules = KeyRules(args.channels or [], args.jobs or [], args.merchants or [], args.cidrs or [],
                                 args.rate)
                key_id, secret = create_key(session, args.name, rules)
                out = {"keyId": key_id, "secret": secret}
            elif args.keys_action == "revoke":
                out = revoke_key(session, args.key_id)
            else:
                key_id, secret, old = rotate_key(session, args.key_id, grace_seconds=args.grace)
                out = {"keyId": key_id, "secret": secret, "previous": old}
    except Refusal as refusal:
        print(json.dumps({"error": refusal.as_dict()}))
        return 1
    print(json.dumps(out, indent=2))
    return 0
