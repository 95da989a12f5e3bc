"""The short form of `make chaos` (tests/chaos/run.py --short): a few fault scenarios on private servers.

It starts its own PostgreSQL clusters and Redis servers (never the shared ones), runs each scenario with real
workers and audits the provider's ledger; the run exits non-zero on any lost, duplicated, double-charged or
unsettled message, which fails this test with the table and the seed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "chaos" / "run.py"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_short_fault_suite_loses_nothing_and_sends_nothing_twice(postgres_server: str, redis_server: str) -> None:
    done = subprocess.run([sys.executable, str(RUN), "--short"], capture_output=True, text=True, timeout=230)
    report = done.stdout[-4000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert "| scenario |" in done.stdout and "FAILED" not in done.stdout, report
