"""A campaign through a real worker whose chunk tasks die mid-chunk: nobody is lost, nobody is sent twice.

The worker's pool process exits (like SIGKILL) at a named point of every chunk's first delivery: before the chunk's
transaction commits, or after it committed but before its dispatch and the next chunk were published. The broker
gives the chunk back; the simulated provider's ledger shows each recipient reached exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import make_merchant, make_tenant, opt, sms
from support import start_worker


@pytest.mark.parametrize("crash_point", ["campaign_chunk_before_commit", "campaign_chunk_after_commit"])
@pytest.mark.timeout(150)
def test_a_chunk_worker_killed_mid_chunk_loses_and_duplicates_nothing(
        hexavox_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_point: str) -> None:
    from providers.simulated import ledger_calls
    from schema.models import Message
    from worker.db import session_scope
    from worker.queues import ALL_QUEUES
    from worker.runner import run_admin_job_by_name, run_send_job
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_CAMPAIGN_CHUNK_SIZE", "10")
    reset_settings()
    # Given a list of 30 opted-in members and a worker whose chunks die once each at the crash point
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=1000)
    contacts = [f"+1813555{n}" for n in range(1000, 1030)]
    run_admin_job_by_name("hexavox.list.create.v1", {"auth": tenant.auth, "merchantId": "gym-a", "listId": "vip",
                                                     "name": "VIP", "contacts": contacts}, str(uuid.uuid4()))
    for contact in contacts:
        opt(tenant, "gym-a", "SMS", contact)
    env = {**hexavox_env, "HEXAVOX_CAMPAIGN_CHUNK_SIZE": "10", "HEXAVOX_CRASH_POINT": crash_point}
    worker = start_worker(env, tmp_path / "chunks.log", queues=",".join(ALL_QUEUES))
    try:
        # When the list is sent to
        answer = run_send_job("hexavox.sms.send.v1", sms(tenant, to=None, listId="vip", type="MKT"),
                              str(uuid.uuid4())).result
        campaign_id = answer["campaign"]["campaignId"]

        def states() -> Counter[str]:
            with session_scope() as session:
                return Counter(session.scalars(select(Message.status).where(Message.request_id == campaign_id)))

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = states()
            if sum(now.values()) == 30 and not now.keys() & {"QUEUED", "DISPATCHING"}:
                break
            time.sleep(0.5)
    finally:
        worker.stop()
    # Then every chunk did die (the worker log shows pool processes lost) and every member was reached exactly once
    assert "exited with 'exitcode 137'" in worker.log() or "WorkerLostError" in worker.log(), worker.log()[-3000:]
    assert sum(states().values()) == 30, states()
    calls = [c for c in ledger_calls(hexavox_env["HEXAVOX_DATABASE_URL"]) if c["outcome"] == "accepted"]
    assert Counter(c["recipient"] for c in calls) == Counter(contacts)
