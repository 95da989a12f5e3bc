"""A worker process's resident memory against the messages it has handled, for the soak scenarios.

Read from ``/proc/PID/status`` (VmRSS) of the process and every descendant (a prefork pool's children; a thread
pool is one process), so it needs nothing installed and works wherever the bench runs (Linux). A curve is judged
after warm-up: caches, connection pools and the interpreter's arenas fill during the first messages, so growth is
measured from the sample at 10% of the messages to the last one, and also as a least-squares slope over those
samples (MiB per 100,000 messages), which one noisy sample does not move.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RssCurve", "rss_kib"]

#: The fraction of the messages after which the worker counts as warmed up.
WARM = 0.10


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:  # the thread ended while we read
            continue
    return found


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in KiB (0 for a process that has gone)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        todo += _children(current)
    return total


@dataclass
class RssCurve:
    """Samples of (messages done, RSS KiB, seconds since the first sample) for one worker and ``total`` messages."""

    pid: int
    total: int
    samples: list[tuple[int, int, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def sample(self, done: int) -> None:
        self.samples.append((done, rss_kib(self.pid), time.monotonic() - self.started))

    def at(self, fraction: float) -> int:
        """RSS (KiB) at the first sample with at least ``fraction`` of the messages done (else the last sample)."""
        return next((rss for done, rss, _ in self.samples if done >= fraction * self.total), self.samples[-1][1])

    def growth(self) -> float:
        """Growth from the warm-up sample to the last one, as a fraction of the warm-up RSS."""
        warm = self.at(WARM)
        return (self.samples[-1][1] - warm) / warm

    def slope_mib_per_100k(self) -> float:
        """Least-squares slope of RSS over messages done after warm-up, in MiB per 100,000 messages."""
        points = [(done, rss) for done, rss, _ in self.samples if done >= WARM * self.total]
        if len(points) < 2:
            return 0.0
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        if spread == 0:
            return 0.0
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread  # KiB per message
        return slope * 100_000 / 1024

    def summary(self) -> dict[str, float]:
        """What the report shows: MiB before any message, at 10/50/100%, the peak, growth and slope after warm-up."""
        mib = 1024
        return {"idle_mib": round(self.samples[0][1] / mib, 1), "p10_mib": round(self.at(0.10) / mib, 1),
                "p50_mib": round(self.at(0.50) / mib, 1), "p100_mib": round(self.samples[-1][1] / mib, 1),
                "peak_mib": round(max(rss for _, rss, _ in self.samples) / mib, 1),
                "growth_after_warmup": round(self.growth(), 4),
                "slope_mib_per_100k": round(self.slope_mib_per_100k(), 2), "samples": len(self.samples),
                "seconds": round(self.samples[-1][2], 1)}

    def write_csv(self, path: Path) -> None:
        """The whole curve, for a plot: messages done, RSS KiB, seconds."""
        path.write_text("done,rss_kib,seconds\n" + "".join(f"{d},{r},{s:.2f}\n" for d, r, s in self.samples))
