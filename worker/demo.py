"""`hexavox demo`: the service's main job on the embedded default, with no servers.

It migrates a fresh SQLite database, starts a worker inside this process on the local-file
broker, sends OTP, TXN, MKT, voice and email jobs through the queue (some of them refused on
purpose), runs seed 003's quickstart through the HTTP API (:mod:`api.demo`), lets reconcile settle
what was sent, and prints what happened to each message.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

MERCHANT = "gym-a"
PHONE, OTHER_PHONE, OPTED_OUT = "+18135551234", "+447911123456", "+919876543210"


def _prepare_environment(data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    os.environ.setdefault("HEXAVOX_DATA_DIR", str(data_dir))
    os.environ.setdefault("HEXAVOX_DLR_GRACE", "0")
    os.environ.setdefault("HEXAVOX_AMBIGUOUS_GRACE", "0")
    from worker.settings import reset_settings

    reset_settings()


@contextmanager
def _embedded_worker() -> Iterator[None]:
    """A real Celery worker (thread pool) consuming every queue, inside this process."""
    from celery.contrib.testing.worker import start_worker

    import tasks.admin  # noqa: F401 - register the tasks with the app
    import tasks.dispatch  # noqa: F401
    import tasks.intake  # noqa: F401
    import tasks.maintenance  # noqa: F401
    from worker.celery_app import app
    from worker.queues import ALL_QUEUES

    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING",
                      queues=list(ALL_QUEUES), shutdown_timeout=30):
        yield


def _setup() -> tuple[str, str]:
    from worker.db import session_scope
    from worker.migrate import upgrade_head
    from worker.tenants import create_tenant

    upgrade_head()
    with session_scope() as session:
        _tenant, key_id, secret = create_tenant(session, "demo-tenant")
    return key_id, secret


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    sms = "hexavox.sms.send.v1"
    return [
        ("OTP to one number", sms, {"merchantId": MERCHANT, "to": PHONE, "body": "Your OTP is 482913",
                                    "sender": "GYMA", "type": "OTP"}),
        ("same OTP again within 10 s", sms, {"merchantId": MERCHANT, "to": PHONE, "body": "Your OTP is 482913",
                                             "sender": "GYMA", "type": "OTP"}),
        ("OTP to two numbers", sms, {"merchantId": MERCHANT, "to": [PHONE, OTHER_PHONE], "body": "Code 1",
                                     "sender": "GYMA", "type": "OTP"}),
        ("TXN to two numbers, one invalid", sms, {"merchantId": MERCHANT, "to": f"{OTHER_PHONE},+1555", "sender":
                                                  "GYMA", "type": "TXN", "body": "Class moved to 6 pm"}),
        ("MKT with OPT_IN and to an opted-out number", sms, {"merchantId": MERCHANT, "to": [PHONE, OPTED_OUT],
                                                             "body": "20% off this week", "sender": "GYMA",
                                                             "type": "MKT"}),
        ("voice call", "hexavox.voice.send.v1", {"merchantId": MERCHANT, "to": PHONE, "type": "REMINDER",
                                                 "text": "Your appointment is tomorrow at 10 AM", "record": False,
                                                 "timeoutSeconds": 30}),
        ("email", "hexavox.email.send.v1", {"merchantId": MERCHANT, "to": "Member@Example.com",
                                            "subject": "Payment reminder", "type": "TRANSACTIONAL",
                                            "body": "<p>Your membership renews tomorrow.</p>"}),
        ("email with header injection", "hexavox.email.send.v1", {"merchantId": MERCHANT, "to": "member@example.com",
                                                                  "subject": "Hi\r\nBcc: all@example.com",
                                                                  "body": "<p>x</p>", "type": "TRANSACTIONAL"}),
        ("unknown merchant", sms, {"merchantId": "nobody", "to": PHONE, "body": "x", "sender": "GYMA",
                                   "type": "TXN"}),
    ]


def _admin_jobs() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("hexavox.merchant.upsert.v1", {"merchantId": MERCHANT, "displayName": "Gym A", "smsLimit": 50,
                                        "voiceMinutesLimit": 10, "emailLimit": 100}),
        ("hexavox.consent.upsert.v1", {"merchantId": MERCHANT, "channel": "SMS", "contact": PHONE,
                                       "status": "OPT_IN", "source": "checkout-form"}),
        ("hexavox.consent.upsert.v1", {"merchantId": MERCHANT, "channel": "SMS", "contact": OPTED_OUT,
                                       "status": "OPT_OUT", "source": "sms-stop"}),
    ]


def _describe(answer: dict[str, Any]) -> list[str]:
    if "error" in answer and not answer.get("messages"):
        return [f"    refused {answer['error']['code']} {answer['error']['name']}"]
    if "campaign" in answer:
        campaign = answer["campaign"]
        return [f"    campaign {campaign['campaignId'][:8]} {campaign['state']}, "
                f"{campaign['planned']} recipients planned"]
    lines = []
    for row in answer.get("messages", []):
        error = row.get("error")
        what = f"refused {error['code']} {error['name']}" if error else f"{row['status']} units={row.get('units')}"
        lines.append(f"    {row['channel']:5} {_mask(row['to']):18} {what}")
    return lines


def _campaign_line(campaign_id: str) -> str:
    """A campaign's state and counts once settled: its refusals (consent at send time) show here, by code."""
    from sqlalchemy import select

    from schema.models import Campaign, Merchant
    from worker.db import session_scope
    from worker.policy.campaigns import campaign_view

    with session_scope() as session:
        campaign, merchant = session.execute(select(Campaign, Merchant.external_id).join(
            Merchant, Merchant.id == Campaign.merchant_id).where(Campaign.request_id == campaign_id)).one()
        view = campaign_view(session, campaign, merchant)
    counts = view["counts"]
    return (f"  campaign {campaign_id[:8]} {view['state']}: delivered {counts['delivered']}, "
            f"refused {counts['refusedByCode']}")


def _mask(value: str) -> str:
    from worker.pii import mask_email, mask_phone

    return mask_email(value) if "@" in value else mask_phone(value)


def _settle(timeout: float = 20.0) -> dict[str, int]:
    """Run reconcile until nothing is left to settle (the simulated provider reports delivery at once)."""
    from sqlalchemy import func, select

    from schema.models import Message
    from tasks.maintenance import reconcile_sweep
    from worker.db import session_scope

    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        reconcile_sweep()
        with session_scope() as session:
            rows = session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
        counts = {str(status): int(count) for status, count in rows}
        if not {"QUEUED", "DISPATCHING", "SENT", "AMBIGUOUS"} & set(counts):
            break
        time.sleep(0.5)
    return counts


def _lookup_hint(request_id: str) -> str:
    """The command that shows a demo request again later, runnable as printed from the current folder.

    The demo keeps its database under its own data dir, so a bare ``hexavox status`` would look elsewhere.
    """
    from worker.settings import get_settings

    def here(path: Path) -> str:
        return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)

    hexavox = here(Path(sys.executable).with_name("hexavox"))
    return (f"look a request up afterwards (messages, states, codes): HEXAVOX_DATA_DIR={here(get_settings().data_dir)}"
            f" {hexavox} status {request_id}")


def run_demo(data_dir: Path | None = None) -> int:
    """Run the demo; returns a process exit code."""
    _prepare_environment(data_dir or Path.cwd() / ".hexavox" / "demo")
    from worker.client import HexavoxClient

    key_id, secret = _setup()
    client = HexavoxClient(key_id, secret)
    print("hexavox demo: SQLite + local-file broker, worker in this process, simulated provider")
    with _embedded_worker():
        for task_name, payload in _admin_jobs():
            answer = client.result(client.submit(task_name, payload))
            print(f"  {task_name}: {answer['status']}")
        campaigns, request_ids = [], []
        for title, task_name, payload in _jobs():
            request_id = client.submit(task_name, payload)
            request_ids.append(request_id)
            answer = client.result(request_id)
            print(f"  {title} -> request {request_id} {answer['status']}")
            print("\n".join(_describe(answer)))
            if "campaign" in answer:
                campaigns.append(answer["campaign"]["campaignId"])
        from api.demo import http_door

        print("\n".join(http_door(key_id, secret, MERCHANT, OTHER_PHONE)))
        final = _settle()
    client.close()
    for campaign_id in campaigns:
        print(_campaign_line(campaign_id))
    print(f"final message states: {final}")
    print(_lookup_hint(request_ids[0]))
    return 0 if not {"QUEUED", "DISPATCHING", "SENT", "AMBIGUOUS"} & set(final) else 1
