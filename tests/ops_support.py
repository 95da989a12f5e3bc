"""Helpers for the operations tests: free ports, HTTP polling, Flower and beat subprocesses, headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from support import REPO

T = TypeVar("T")

#: Screenshots and other test artifacts: kept for a person to look at, never committed (.gitignore).
ARTIFACTS = Path(os.environ.get("HEXAVOX_TEST_ARTIFACTS", REPO / ".artifacts"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.25) -> T:
    """``probe()``'s first truthy value; fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (httpx.HTTPError, OSError) as err:
            last_error = err
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def start_process(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    """A subprocess in its own group, output to ``log_path``; the caller stops it with :func:`stop_process`."""
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def hexavox_cmd(*args: str) -> list[str]:
    """The ``hexavox`` command of this interpreter (works without the venv's bin on PATH)."""
    return [sys.executable, "-m", "worker.cli", *args]


def chromium() -> str:
    """Debian's headless Chromium, installed with apt-get when missing (as CI does); fails saying what to install."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=600)
        if found := shutil.which("chromium"):
            return found
    raise AssertionError("headless Chromium is needed for the dashboard screenshot: apt-get install chromium")


def screenshot(url: str, out: Path, size: str = "1400,900") -> Path:
    """A PNG of ``url`` taken by headless Chromium."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", "--virtual-time-budget=4000", f"--screenshot={out}", url],
                   capture_output=True, timeout=90, check=False)
    return out
