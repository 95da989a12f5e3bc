"""Test support for the HTTP API: the app under uvicorn on a free loopback port, and a key's rules set directly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from schema.models import ApiKey
from worker.db import session_scope
from worker.settings import Settings, get_settings

from factories import Tenant
from support import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_api(settings: Settings | None = None, **seams: Any) -> Iterator[str]:
    """``create_app`` served by uvicorn exactly as ``hexavox api`` runs it (in a thread); yields its base URL."""
    from api.app import create_app, uvicorn_config

    settings = settings or get_settings()
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(settings, **seams), settings, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def api_process(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``hexavox api`` as its own process (another API process of the deployment); yields its base URL."""
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "api", "--port", str(port)], cwd=REPO,
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "hexavox api did not start"
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def key_headers(tenant: Tenant, **extra: str) -> dict[str, str]:
    return {"X-API-KEY": tenant.key_id, "X-API-SECRET": tenant.secret, **extra}


def client(base_url: str, tenant: Tenant | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=key_headers(tenant) if tenant else {}, timeout=30)


def set_key_rules(tenant: Tenant, **columns: Any) -> None:
    """Change the tenant key's rules (allowed_cidrs, rate_limit_per_minute, allowed_channels, ...) in place."""
    with session_scope() as session:
        key = session.query(ApiKey).filter_by(key_id=tenant.key_id).one()
        for name, value in columns.items():
            setattr(key, name, value)
