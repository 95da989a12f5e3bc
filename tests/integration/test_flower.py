"""Flower against a real worker: it asks for a password, shows queue lengths, and shows no personal data.

Real jobs (an OTP with its code, a TXN to two numbers, an email, a refused number, a consent upsert carrying
the contact, and a failing task whose exception names the recipient) go through a real worker that reports
task events. Flower's API, its task pages and its broker page are then read and searched for every raw
value that went in: the figure is the number of occurrences (0). A headless Chromium screenshot of the
dashboard is kept under .artifacts/ (not in git).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from factories import Tenant, make_merchant, make_tenant
from ops_support import ARTIFACTS, free_port, hexavox_cmd, screenshot, start_process, stop_process, wait_for
from support import WorkerProcess, start_worker

OTP_CODE = "482913"
PHONE = "+18135551234"
OTHER = "+18135551235"
EMAIL = "member@example.com"
BODY = "Your Hexavox gym code is " + OTP_CODE
EMAIL_BODY = "<p>Mary Lambert, your locker combination changed</p>"
#: Every raw form that must never be shown (national forms of the numbers too).
def _raw(tenant: Tenant) -> tuple[str, ...]:
    return (PHONE, OTHER, PHONE[2:], OTHER[2:], EMAIL, OTP_CODE, "Mary Lambert", "locker combination",
            tenant.secret)


USER, PASSWORD = "ops", "s3cret-flower-pw"


@pytest.fixture
def worker_with_events(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    from worker.queues import ALL_QUEUES

    worker = start_worker(hexavox_env, tmp_path / "worker.log", queues=",".join(ALL_QUEUES), extra=["-E"])
    yield worker
    worker.stop()


@pytest.fixture
def flower(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start_process(hexavox_cmd("flower", f"--port={port}", "--address=127.0.0.1",
                                     f"--basic-auth={USER}:{PASSWORD}"), hexavox_env, tmp_path / "flower.log",
                         cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("flower to answer", lambda: httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200)
        yield base
    finally:
        stop_process(proc)


def _get(base: str, path: str) -> httpx.Response:
    return httpx.get(base + path, auth=(USER, PASSWORD), timeout=10)


def _drive_jobs(tenant: Tenant) -> list[str]:
    """Publish real jobs through the client; returns the intake request ids (answers awaited)."""
    from worker.client import HexavoxClient

    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        ids = [
            client.send_sms(merchantId="gym-a", to=PHONE, body=BODY, sender="GYMA", type="OTP"),
            client.send_sms(merchantId="gym-a", to=[PHONE, OTHER], body="Class moved to 6 pm", sender="GYMA",
                            type="TXN"),
            client.send_email(merchantId="gym-a", to=EMAIL, subject="Locker", body=EMAIL_BODY,
                              type="TRANSACTIONAL"),
            client.send_sms(merchantId="gym-a", to="+1813555", body=BODY, sender="GYMA", type="OTP"),
            client.submit("hexavox.consent.upsert.v1", {"merchantId": "gym-a", "channel": "EMAIL",
                                                        "contact": EMAIL, "status": "OPT_IN"}),
        ]
        answers = [client.result(request_id, timeout=60) for request_id in ids]
    finally:
        client.close()
    assert [a["status"] for a in answers] == ["ACCEPTED", "ACCEPTED", "ACCEPTED", "REFUSED", "ACCEPTED"], answers
    return ids


def _fail_a_task_naming_the_recipient() -> str:
    """A task called with a keyword it does not take: its arguments and its TypeError name the recipient."""
    from worker.celery_app import app

    task_id = str(uuid.uuid4())
    app.send_task("hexavox.internal.apply_reports", args=["simulated", [{"to": PHONE, "body": BODY}]],
                  kwargs={EMAIL: PHONE}, task_id=task_id, queue="callbacks")
    return task_id


def _tasks(base: str) -> dict[str, Any]:
    tasks: dict[str, Any] = _get(base, "/api/tasks").raise_for_status().json()
    return tasks


def test_flower_shows_tasks_and_queues_without_personal_data(hexavox_env: dict[str, str],
                                                             worker_with_events: WorkerProcess, flower: str) -> None:
    # Given a merchant, a worker sending task events and Flower watching it
    tenant = make_tenant()
    make_merchant(tenant)
    assert httpx.get(f"{flower}/api/tasks", timeout=5).status_code == 401  # no password, no tasks
    wait_for("flower to see the worker", lambda: _get(flower, "/api/workers?refresh=1").json(), timeout=30)

    # When real jobs go through, and a task fails with an error naming a recipient
    ids = _drive_jobs(tenant)
    failed_id = _fail_a_task_naming_the_recipient()
    tasks = wait_for("flower to record every task", lambda: (
        t if all(i in t and t[i]["state"] in {"SUCCESS", "FAILURE"} for i in [*ids, failed_id])
        and any(v["name"] == "hexavox.internal.dispatch" and v["state"] == "SUCCESS" for v in t.values())
        else None) if (t := _tasks(flower)) else None, timeout=60)

    # Then flower's API, task pages, results and broker page carry none of the raw values
    pages = {"/api/tasks": json.dumps(tasks), "/tasks": _get(flower, "/tasks").text}
    for task_id in [*ids, failed_id]:
        pages[f"/task/{task_id}"] = _get(flower, f"/task/{task_id}").text
        pages[f"/api/task/info/{task_id}"] = _get(flower, f"/api/task/info/{task_id}").text
    for task_id in ids:
        pages[f"/api/task/result/{task_id}"] = _get(flower, f"/api/task/result/{task_id}").text
    broker = _get(flower, "/broker")
    pages["/broker"] = broker.text
    leaks = {path: [raw for raw in _raw(tenant) if raw in text] for path, text in pages.items()}
    assert {path: found for path, found in leaks.items() if found} == {}
    print(f"\nflower: {len(pages)} pages read, {sum(map(len, leaks.values()))} raw values found")

    # And what it shows is still useful: message ids and masked recipients, codes, the failure's type
    otp = tasks[ids[0]]
    assert "+1******1234" in otp["result"] and "QUEUED" in otp["result"]
    assert "'status': 'REFUSED'" in tasks[ids[3]]["result"]  # Celery's repr stops before the code's depth
    assert "E406" in pages[f"/api/task/result/{ids[3]}"]  # the stored answer has it
    failed = tasks[failed_id]
    assert failed["state"] == "FAILURE" and "TypeError" in failed["exception"] and "***@example.com" in failed[
        "exception"]
    assert "'simulated'" in failed["args"] and "[Filtered]" in failed["args"]

    # And queue lengths per queue are visible
    queues = _get(flower, "/api/queues/length").raise_for_status().json()["active_queues"]
    assert {"otp", "transactional", "bulk", "email", "callbacks"} <= {q["name"] for q in queues}
    assert all(isinstance(q["messages"], int) for q in queues)
    assert broker.status_code == 200 and "transactional" in broker.text

    # And a screenshot of the dashboard is kept for a person to look at
    shot = screenshot(flower.replace("http://", f"http://{USER}:{PASSWORD}@") + "/tasks",
                      ARTIFACTS / "flower-tasks.png")
    assert shot.exists() and shot.stat().st_size > 10_000, "chromium took no screenshot"
