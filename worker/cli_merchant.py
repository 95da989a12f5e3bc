"""`hexavox merchant create|show|list|set-limits|rotate-webhook-secret`: merchants from the operator's shell.

Without these an operator's only way to a merchant was an admin job, and a merchant made there
with its limits left out could not send anything. Each command prints seed 003's MerchantView
as JSON; ``create`` and ``show --webhook-secret`` add the newest dlrUrl signing secret
(``webhookSecret``), which the merchant needs to verify its callbacks.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

__all__ = ["add_merchant_parser", "run_merchant"]

#: Command-line flag -> MerchantFields alias, for the limits.
_LIMIT_FLAGS = {"sms": "smsLimit", "voice": "voiceMinutesLimit", "email": "emailLimit"}


def _non_negative(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a limit cannot be negative")
    return value


def _limit_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--sms", type=_non_negative, metavar="N", help=f"SMS segments per period ({what})")
    parser.add_argument("--voice", type=_non_negative, metavar="N", help=f"voice minutes per period ({what})")
    parser.add_argument("--email", type=_non_negative, metavar="N", help=f"emails per period ({what})")


def add_merchant_parser(sub: Any, tenant_help: str) -> None:
    """The ``merchant`` command and its actions."""
    actions = sub.add_parser("merchant").add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a merchant (limits left out: HEXAVOX_NEW_MERCHANT_LIMITS)")
    create.add_argument("merchant_id")
    create.add_argument("--name", help="display name (default: the merchant id)")
    _limit_flags(create, "default from HEXAVOX_NEW_MERCHANT_LIMITS")
    create.add_argument("--timezone", help="IANA time zone for scheduled sends (default: UTC)")
    create.add_argument("--countries", metavar="US,GB", help="only these destination countries (default: any)")
    create.add_argument("--inactive", action="store_true", help="create it inactive (its sends refused E804)")
    show = actions.add_parser("show", help="one merchant: limits, credits, usage")
    show.add_argument("merchant_id")
    show.add_argument("--webhook-secret", action="store_true", help="add the newest dlrUrl signing secret")
    actions.add_parser("list", help="every merchant of the tenant")
    limits = actions.add_parser("set-limits", help="change some limits; the others stay as they are")
    limits.add_argument("merchant_id")
    _limit_flags(limits, "unchanged when left out")
    rotate = actions.add_parser("rotate-webhook-secret", help="a new dlrUrl signing secret")
    rotate.add_argument("merchant_id")
    rotate.add_argument("--keep", type=int, choices=[1, 2], default=2,
                        help="secrets that sign from now on: 2 keeps the old one verifying, 1 revokes it at once")
    for parser in (create, show, actions.choices["list"], limits, rotate):
        parser.add_argument("--tenant", help=tenant_help)


def run_merchant(args: argparse.Namespace, read_as_tenant: Callable[[str | None, Callable[[Any, int], object]], int]
                 ) -> int:
    """Run one ``merchant`` action as the tenant named by ``--tenant`` (or the only one)."""
    actions: dict[str, Callable[[Any, int], object]] = {
        "create": lambda s, t: _create(s, t, args), "show": lambda s, t: _show(s, t, args),
        "list": _list, "set-limits": lambda s, t: _set_limits(s, t, args),
        "rotate-webhook-secret": lambda s, t: _rotate(s, t, args),
    }
    return read_as_tenant(args.tenant, actions[args.action])


def _fields(payload: dict[str, Any]) -> Any:
    """The payload as the upsert job's merchant fields; a bad value is refused E413 like the job would be."""
    import pydantic

    from worker.catalogue import Code
    from worker.contract import MerchantFields
    from worker.errors import ValidationError

    try:
        return MerchantFields.model_validate(payload)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ValidationError(Code.INVALID_INPUT, f"{field}: {first['msg']}", field=field) from None


def _limits(args: argparse.Namespace) -> dict[str, int]:
    return {alias: getattr(args, flag) for flag, alias in _LIMIT_FLAGS.items() if getattr(args, flag) is not None}


def _create(session: Any, tenant_id: int, args: argparse.Namespace) -> dict[str, object]:
    from schema.models import Merchant
    from worker.policy.merchants import merchant_view, upsert_merchant

    if _find(session, tenant_id, args.merchant_id) is not None:
        raise LookupError(f"merchant {args.merchant_id} exists; change its limits with `hexavox merchant set-limits`")
    payload: dict[str, Any] = {"merchantId": args.merchant_id, "active": not args.inactive, **_limits(args)}
    if args.name is not None:
        payload["displayName"] = args.name
    if args.timezone is not None:
        payload["timezone"] = args.timezone
    if args.countries is not None:
        payload["allowedCountries"] = [c.strip() for c in args.countries.split(",") if c.strip()]
    merchant: Merchant = upsert_merchant(session, tenant_id, _fields(payload), dt.date.today())
    return {**merchant_view(session, merchant), "webhookSecret": merchant.webhook_secrets[-1]}


def _show(session: Any, tenant_id: int, args: argparse.Namespace) -> dict[str, object]:
    from worker.policy.merchants import load_merchant, merchant_view

    merchant = load_merchant(session, tenant_id, args.merchant_id, must_be_active=False)
    view = merchant_view(session, merchant)
    return {**view, "webhookSecret": merchant.webhook_secrets[-1]} if args.webhook_secret else view


def _list(session: Any, tenant_id: int) -> list[dict[str, object]]:
    from sqlalchemy import select

    from schema.models import Merchant
    from worker.policy.merchants import merchant_view

    merchants = session.scalars(select(Merchant).where(Merchant.tenant_id == tenant_id)
                                .order_by(Merchant.external_id)).all()
    return [merchant_view(session, merchant) for merchant in merchants]


def _set_limits(session: Any, tenant_id: int, args: argparse.Namespace) -> dict[str, object]:
    from worker.policy.merchants import load_merchant, merchant_view, upsert_merchant

    limits = _limits(args)
    if not limits:
        raise LookupError("give at least one of --sms, --voice, --email")
    load_merchant(session, tenant_id, args.merchant_id, must_be_active=False)  # set-limits never creates one
    merchant = upsert_merchant(session, tenant_id, _fields({"merchantId": args.merchant_id, **limits}),
                               dt.date.today())
    return merchant_view(session, merchant)


def _rotate(session: Any, tenant_id: int, args: argparse.Namespace) -> dict[str, object]:
    """A new dlrUrl signing secret; the newest ``--keep`` secrets sign, so the old one verifies until it drops out."""
    from worker.policy.callbacks_out import rotate_secret
    from worker.policy.merchants import load_merchant

    merchant = load_merchant(session, tenant_id, args.merchant_id, must_be_active=False)
    secret = rotate_secret(session, merchant.id, keep=args.keep)
    return {"merchantId": args.merchant_id, "webhookSecret": secret, "signingSecrets": args.keep}


def _find(session: Any, tenant_id: int, merchant_id: str) -> Any:
    from sqlalchemy import select

    from schema.models import Merchant

    return session.scalars(select(Merchant).where(Merchant.tenant_id == tenant_id,
                                                  Merchant.external_id == merchant_id)).first()
