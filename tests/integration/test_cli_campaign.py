"""`hexavox campaign ...` in-process against the test's database: counts, actions, and a watch that ends."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from factories import make_merchant, make_tenant, opt, sms


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    from worker.cli import main

    code = main(["campaign", *argv])
    out, err = capsys.readouterr()
    if code != 0:
        return code, err
    if argv[0] == "watch":  # the bar first, then the final view
        out = out[out.index('{\n  "campaignId"'):]
    return code, json.loads(out)


def test_list_show_pause_resume_cancel_and_watch(hexavox_env: dict[str, str], capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    from worker.runner import run_send_job

    # Given a running campaign to three opted-in numbers
    tenant = make_tenant()
    make_merchant(tenant)
    numbers = ["+18135551001", "+18135551002", "+18135551003"]
    for number in numbers:
        opt(tenant, "gym-a", "SMS", number)
    answer = run_send_job("hexavox.sms.send.v1", sms(tenant, to=numbers, type="MKT"), str(uuid.uuid4())).result
    campaign_id = answer["campaign"]["campaignId"]
    # Then list and show print its counts
    code, listed = _cli(capsys, "list")
    assert code == 0 and [c["campaignId"] for c in listed] == [campaign_id]
    code, shown = _cli(capsys, "show", campaign_id)
    assert (shown["state"], shown["counts"]["planned"], shown["counts"]["pending"]) == ("RUNNING", 3, 3)
    # And pause, resume and cancel act on it, each once
    assert _cli(capsys, "pause", campaign_id)[1]["state"] == "PAUSED"
    assert _cli(capsys, "resume", campaign_id)[1]["state"] == "RUNNING"
    cancelled = _cli(capsys, "cancel", campaign_id)[1]
    assert (cancelled["state"], cancelled["counts"]["refusedByCode"]) == ("CANCELLED", {"E882": 3})
    # And watch draws its bar and returns once the campaign has ended
    code, watched = _cli(capsys, "watch", campaign_id, "--interval", "0.1")
    assert code == 0 and watched["state"] == "CANCELLED"
    # And an unknown id is refused with its code
    code, err = _cli(capsys, "show", str(uuid.uuid4()))
    assert code == 1 and "E880" in err
