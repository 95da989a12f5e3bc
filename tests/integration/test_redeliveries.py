"""The database attempt cap for intake and admin jobs (worker.policy.redeliveries), without Celery in the way."""

from __future__ import annotations

import uuid

import pytest

from schema.models import TaskRedelivery
from worker.db import session_scope
from worker.runner import guarded


def count_of(task_id: str) -> int | None:
    with session_scope() as session:
        row = session.get(TaskRedelivery, task_id)
        return None if row is None else row.redeliveries


def test_a_first_delivery_costs_no_row_and_a_completed_redelivery_leaves_none(hexavox_env: dict[str, str]) -> None:
    first, again = str(uuid.uuid4()), str(uuid.uuid4())
    assert guarded("hexavox.sms.send.v1", first, False, lambda: {"ran": 1}) == {"ran": 1}
    assert count_of(first) is None
    assert guarded("hexavox.sms.send.v1", again, True, lambda: {"ran": 2}) == {"ran": 2}
    assert count_of(again) is None


def test_the_job_runs_until_the_cap_then_is_answered_e818(hexavox_env: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_MAX_DELIVERY_ATTEMPTS", "3")
    reset_settings()
    request_id, runs = str(uuid.uuid4()), []

    def crashing() -> dict[str, object]:
        runs.append(1)
        raise SystemExit("the worker died")  # what a lost worker looks like from here: no completion

    for _ in range(2):  # two redeliveries that die again
        with pytest.raises(SystemExit):
            guarded("hexavox.voice.send.v1", request_id, True, crashing)
    answer = guarded("hexavox.voice.send.v1", request_id, True, crashing)
    assert len(runs) == 2 and count_of(request_id) == 3
    assert answer["status"] == "REFUSED" and answer["error"]["code"] == "E818"  # type: ignore[index]
