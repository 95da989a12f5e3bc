"""The README's scale-out steps on one host: two "machines" (worker processes with their own node names and
queue sets) and two beats, sharing one database, broker, Redis and result backend.

What the steps promise and this checks: every queue has a consumer once both machines run; each kind of job
is taken by the machine that consumes its queue; every message is sent exactly once (the simulated
provider's ledger); and a second beat only doubles the periodic tasks, which claim their rows.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import pytest
from sqlalchemy import select

from factories import Tenant, make_merchant, make_tenant
from ops_support import start_process, stop_process, wait_for
from support import WorkerProcess, start_worker

MACHINE_A = "otp,transactional"
MACHINE_B = "bulk,voice,email,admin,reconcile,callbacks"


@pytest.fixture
def machines(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    a = start_worker(hexavox_env, tmp_path / "machine-a.log", queues=MACHINE_A, pool="threads", concurrency=4,
                     extra=["-n", "machine-a@%h"])
    try:
        b = start_worker(hexavox_env, tmp_path / "machine-b.log", queues=MACHINE_B, pool="threads", concurrency=4,
                         extra=["-n", "machine-b@%h"])
    except Exception:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def two_beats(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[list[tuple[Popen[bytes], Path]]]:
    beats = []
    for name in ("beat-a", "beat-b"):
        log = tmp_path / f"{name}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "worker", "beat", "-l", "INFO", "-s", str(tmp_path / name)]
        beats.append((start_process(cmd, hexavox_env, log), log))
    yield beats
    for proc, _ in beats:
        stop_process(proc)


def _active_queues() -> dict[str, set[str]]:
    from worker.celery_app import app

    replies = app.control.inspect(timeout=3).active_queues() or {}
    return {node.split("@")[0]: {q["name"] for q in queues} for node, queues in replies.items()}


def _statuses(request_ids: list[str]) -> dict[str, str]:
    from schema.models import Message
    from worker.db import session_scope

    with session_scope() as session:
        rows = session.execute(select(Message.id, Message.status).where(Message.request_id.in_(request_ids)))
        return {message_id: status for message_id, status in rows}


def _send_one_of_each(tenant: Tenant) -> dict[str, str]:
    from worker.client import HexavoxClient

    client = HexavoxClient(tenant.key_id, tenant.secret)
    try:
        ids = {
            "otp": client.send_sms(merchantId="gym-a", to="+18135551234", body="Code 1", sender="GYMA", type="OTP"),
            "txn": client.send_sms(merchantId="gym-a", to="+18135551235", body="Moved", sender="GYMA", type="TXN"),
            "voice": client.send_voice(merchantId="gym-a", to="+18135551236", text="Your class starts soon",
                                       type="TXN"),
            "email": client.send_email(merchantId="gym-a", to="member@example.com", subject="Class",
                                       body="<p>Moved</p>", type="TRANSACTIONAL"),
        }
        answers = {kind: client.result(request_id, timeout=60)["status"] for kind, request_id in ids.items()}
    finally:
        client.close()
    assert answers == dict.fromkeys(ids, "ACCEPTED"), answers
    return ids


def test_two_machines_and_two_beats_share_the_work_and_send_each_message_once(
        hexavox_env: dict[str, str], machines: tuple[WorkerProcess, WorkerProcess],
        two_beats: list[tuple[Popen[bytes], Path]]) -> None:
    from providers.simulated import ledger_counts
    from worker.queues import ALL_QUEUES

    machine_a, machine_b = machines
    tenant = make_tenant()
    make_merchant(tenant)

    # Step: every queue has a consumer, each machine its own set
    queues = wait_for("both machines to answer", lambda: q if len(q := _active_queues()) == 2 else None)
    assert queues == {"machine-a": set(MACHINE_A.split(",")), "machine-b": set(MACHINE_B.split(","))}
    assert set().union(*queues.values()) == set(ALL_QUEUES)

    # Step: jobs of every kind are answered and dispatched, each by the machine that consumes its queue
    ids = _send_one_of_each(tenant)
    statuses = wait_for("every message sent", lambda: s if len(s := _statuses(list(ids.values()))) == 4 and all(
        v in {"SENT", "DELIVERED"} for v in s.values()) else None, timeout=60)
    assert ids["otp"] in machine_a.log() and ids["txn"] in machine_a.log()
    assert ids["voice"] in machine_b.log() and ids["email"] in machine_b.log()
    assert ids["otp"] not in machine_b.log() and ids["email"] not in machine_a.log()

    # Step: with two beats, the periodic tasks run twice as often, and nothing is sent twice
    wait_for("both beats to publish release_due", lambda: all(
        "hexavox.internal.release_due" in log.read_text() for _, log in two_beats), timeout=30)
    wait_for("machine b to run the periodic tasks of both beats",
             lambda: machine_b.log().count("hexavox.internal.release_due") >= 4, timeout=30)
    time.sleep(1)
    sent = ledger_counts(hexavox_env["HEXAVOX_DATABASE_URL"])
    assert {message_id: sent.get(message_id) for message_id in statuses} == dict.fromkeys(statuses, 1)
    print(f"\nscale-out: queues {queues}, {len(statuses)} messages sent once each, two beats")
