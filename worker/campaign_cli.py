"""``hexavox campaign list|show|pause|resume|cancel|watch``: the operator's view of campaigns, read from the database.

The actions run the same policy functions as the ``hexavox.campaign.*`` jobs; ``watch`` polls the counts and draws
them with rich's progress bar (rate and ETA included), until the campaign is COMPLETED or CANCELLED.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

__all__ = ["add_campaign_parser", "run_campaign_command"]

_ENDED = {"COMPLETED", "CANCELLED"}


def add_campaign_parser(sub: Any) -> None:
    campaign = sub.add_parser("campaign", help="list, show, pause, resume, cancel or watch campaigns")
    campaign.add_argument("action", choices=["list", "show", "pause", "resume", "cancel", "watch"])
    campaign.add_argument("campaign_id", nargs="?", help="the campaign id (not for list)")
    campaign.add_argument("--merchant", help="list: only this merchantId")
    campaign.add_argument("--limit", type=int, default=50, help="list: how many, newest first")
    campaign.add_argument("--interval", type=float, default=1.0, help="watch: seconds between reads")


def run_campaign_command(args: argparse.Namespace) -> int:
    from worker.errors import Refusal

    try:
        if args.action == "list":
            return _print(_list(args.merchant, args.limit))
        if not args.campaign_id:
            print(f"hexavox: campaign {args.action} needs a campaign id", file=sys.stderr)
            return 2
        if args.action == "watch":
            return _watch(args.campaign_id, args.interval)
        return _print(_act(args.action, args.campaign_id))
    except Refusal as refusal:
        print(f"hexavox: {refusal}", file=sys.stderr)
        return 1


def _print(value: object) -> int:
    print(json.dumps(value, indent=2, default=str))
    return 0


def _list(merchant_id: str | None, limit: int) -> list[dict[str, Any]]:
    from schema.models import Campaign, Merchant
    from worker.db import session_scope
    from worker.policy.campaigns import campaign_view

    stmt = (select(Campaign, Merchant.external_id).join(Merchant, Merchant.id == Campaign.merchant_id)
            .order_by(Campaign.id.desc()).limit(limit))
    if merchant_id:
        stmt = stmt.where(Merchant.external_id == merchant_id)
    with session_scope() as session:
        return [campaign_view(session, campaign, external) for campaign, external in session.execute(stmt).all()]


def _load(session: Session, campaign_id: str, *, lock: bool = False) -> tuple[Any, str]:
    from schema.models import Campaign, Merchant
    from worker.catalogue import Code
    from worker.errors import Refusal

    stmt = (select(Campaign, Merchant.external_id).join(Merchant, Merchant.id == Campaign.merchant_id)
            .where(Campaign.request_id == campaign_id))
    row = session.execute(stmt.with_for_update(of=Campaign) if lock else stmt).first()
    if row is None:
        raise Refusal(Code.CAMPAIGN_NOT_FOUND, "no such campaign", field="campaignId")
    return row[0], str(row[1])


def _act(action: str, campaign_id: str) -> dict[str, Any]:
    from worker.db import session_scope
    from worker.policy.campaigns import campaign_view, cancel, pause, resume
    from worker.policy.transitions import utcnow

    with session_scope() as session:
        campaign, merchant = _load(session, campaign_id, lock=action != "show")
        if action == "pause":
            pause(campaign)
        elif action == "resume":
            resume(session, campaign, utcnow())
        elif action == "cancel":
            cancel(session, campaign, utcnow())
        session.flush()
        return campaign_view(session, campaign, merchant)


def _watch(campaign_id: str, interval: float) -> int:
    """A live bar: recipients done (sent, settled or refused) of those planned, with rate and time remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    view = _act("show", campaign_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]:.0f}/s"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, refresh_per_second=4) as progress:
        bar = progress.add_task(view["name"] or campaign_id[:8], total=view["counts"]["planned"] or 1, rate=0.0,
                                detail="")
        while True:
            counts = view["counts"]
            done = counts["planned"] - counts["pending"] - counts["queued"] - counts["dispatching"]
            speed = progress.tasks[0].speed or 0.0
            progress.update(bar, completed=done, rate=speed, detail=_detail(view))
            if view["state"] in _ENDED:
                break
            time.sleep(interval)
            view = _act("show", campaign_id)
    return _print(view)


def _detail(view: dict[str, Any]) -> str:
    counts = view["counts"]
    return (f"{view['state']} sent {counts['sent'] + counts['delivered']} failed {counts['failed']} "
            f"refused {counts['refused']}")
