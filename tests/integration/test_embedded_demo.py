"""The README's first command: `hexavox demo` on the embedded default (SQLite, local-file broker, no servers)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HEXAVOX = Path(sys.executable).with_name("hexavox")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_demo_runs_every_job_kind_through_the_queue_with_no_servers(tmp_path: Path) -> None:
    # Given an environment that names no database, broker or Redis (the embedded default)
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEXAVOX_")}
    env["HEXAVOX_DATA_DIR"] = str(tmp_path / "data")

    # When the demo runs
    done = subprocess.run([str(HEXAVOX), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=150)

    # Then it exits 0 with every message FINAL, on SQLite, after OTP, TXN, MKT, voice and email jobs and refusals
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "SQLite + local-file broker" in out
    assert "final message states: {'DELIVERED': 6, 'REFUSED': 3}" in out  # 5 through the queue, 1 over HTTP
    for shown in ("OTP to one number", "TXN to two numbers", "MKT with OPT_IN", "voice call", "email ->",
                  "E807", "E404", "E406", "E805", "E823", "E803"):
        assert shown in out, shown
    # and seed 003's quickstart went through the HTTP door on the same embedded database and broker
    for shown in ("HTTP POST /merchants: 200", "HTTP POST /consents: 200 merchantId=gym-a status=OPT_IN",
                  "HTTP POST /messages/sms (OTP): 202", "(the first answer, replayed)", "401 E801",
                  "HTTP GET /reports/usage: 200"):
        assert shown in out, shown
    assert "+447911123456" not in out
    assert (tmp_path / "data" / "hexavox.db").is_file()
    assert "+18135551234" not in out  # numbers are masked in what the demo prints


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_demo_prints_full_request_ids_no_broker_noise_and_how_to_look_one_up(tmp_path: Path) -> None:
    # Given the embedded default, When the demo runs
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEXAVOX_")}
    done = subprocess.run([str(HEXAVOX), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    # Then kombu's "No hostname was supplied" warning is gone from what it prints
    assert "hostname" not in done.stdout + done.stderr
    # And every request id is shown whole (a UUID one can look up), not its first 8 characters
    shown = re.findall(r"-> request (\S+) ", done.stdout)
    assert len(shown) == 9 and all(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", i) for i in shown)
    # And its last line is a command that looks one up afterwards, which works as printed
    hint = done.stdout.strip().splitlines()[-1]
    assert hint.startswith("look a request up afterwards") and hint.endswith(f"status {shown[0]}")
    variable, command, *args = shlex.split(hint.split(": ", 1)[1])
    name, _, value = variable.partition("=")
    looked_up = subprocess.run([command, *args], cwd=tmp_path, env={**env, name: value}, capture_output=True,
                               text=True, timeout=60)
    assert looked_up.returncode == 0, looked_up.stderr
    assert json.loads(looked_up.stdout)["messages"][0]["status"] == "DELIVERED"
