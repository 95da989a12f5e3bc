"""The soak's memory arithmetic (tests/bench/rss.py): what `make soak` calls flat must be flat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from rss import RssCurve, rss_kib  # noqa: E402


def curve(points: list[tuple[int, int]], total: int = 1000) -> RssCurve:
    return RssCurve(pid=0, total=total, samples=[(done, kib, float(i)) for i, (done, kib) in enumerate(points)])


def test_a_curve_that_stops_growing_after_warm_up_is_flat() -> None:
    flat = curve([(0, 50_000), (50, 90_000), (100, 100_000), (500, 100_400), (1000, 100_000)])
    assert flat.at(0.10) == 100_000 and flat.at(0.5) == 100_400
    assert flat.growth() == 0.0
    assert abs(flat.slope_mib_per_100k()) < 5
    assert flat.summary()["idle_mib"] == round(50_000 / 1024, 1)


def test_a_steady_leak_shows_as_growth_and_slope() -> None:
    # 1 KiB a message after warm-up: 100,000 KiB per 100,000 messages, about 97.7 MiB.
    leak = curve([(done, 100_000 + done) for done in range(0, 1001, 100)])
    assert leak.growth() == pytest.approx((101_000 - 100_100) / 100_100)
    assert leak.slope_mib_per_100k() == pytest.approx(100_000 / 1024)


def test_rss_counts_the_process_and_its_children() -> None:
    own = rss_kib(os.getpid())
    assert own > 1024
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(64 * 2**20); time.sleep(30)"])
    try:
        for _ in range(100):
            if rss_kib(child.pid) > 60 * 1024:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert rss_kib(os.getpid()) >= own + 60 * 1024
    finally:
        child.kill()
        child.wait()
    assert rss_kib(child.pid) == 0
