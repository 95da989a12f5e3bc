"""Test support: find (or start) the real services, and run real Celery workers as subprocesses.

Tests never use fake Redis or fake databases. When a service is down this module tries to
start the locally installed one, and otherwise fails with a message that says what to install.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

PG_ADMIN_URL = os.environ.get("HEXAVOX_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("HEXAVOX_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("HEXAVOX_TEST_REDIS_PORT", "6379"))
REPO = Path(__file__).resolve().parent.parent


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _run(cmd: list[str]) -> str:
    """Run a start command; what it printed on failure, so a service that will not start says why."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{cmd[0]}: {err}"
    return "" if done.returncode == 0 else f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-500:]}"


def _start_postgres() -> str:
    if not (shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir()):
        return "pg_ctlcluster not found"
    return "; ".join(filter(None, (_run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
                                   for version in sorted(os.listdir("/etc/postgresql")))))


def _start_redis() -> str:
    if not shutil.which("redis-server"):
        return "redis-server not found"
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    return _run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
                 "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"])


def _start_rabbitmq() -> str:
    if not shutil.which("rabbitmq-server"):
        return "rabbitmq-server not found"
    return _run(["rabbitmq-server", "-detached"])


def ensure_service(name: str) -> str | None:
    """Return None when ``name`` answers (starting it if installed and stopped), else what to do about it."""
    host, port, start, hint = {
        "postgresql": ("127.0.0.1", 5432, _start_postgres,
                       "install PostgreSQL (apt-get install postgresql) and allow trust auth on 127.0.0.1:5432"),
        "redis": (REDIS_HOST, REDIS_PORT, _start_redis, "install Redis (apt-get install redis-server)"),
        "rabbitmq": ("127.0.0.1", 5672, _start_rabbitmq,
                     "install RabbitMQ (apt-get install rabbitmq-server) with the guest user on 127.0.0.1:5672"),
    }[name]
    if _port_open(host, port):
        return None
    problem = start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return None
        time.sleep(0.5)
    why = f" (starting it: {problem})" if problem else ""
    return f"{name} is not reachable on {host}:{port} and could not be started{why}: {hint}"


@dataclass
class WorkerProcess:
    """A real ``celery worker`` subprocess in its own process group."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (main process and pool children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(10)


def start_worker(env: dict[str, str], log_path: Path, *, queues: str = "", concurrency: int = 2,
                 pool: str = "prefork", extra: list[str] | None = None) -> WorkerProcess:
    """Start ``celery -A worker worker`` with ``env`` layered over this process's environment."""
    cmd = [sys.executable, "-m", "celery", "-A", "worker", "worker", "-l", "INFO", "-P", pool,
           "-c", str(concurrency), "--without-mingle", "--without-gossip", "-n", f"test{os.getpid()}@%h"]
    if queues:
        cmd += ["-Q", queues]
    cmd += extra or []
    full_env = {**os.environ, **env}
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    worker = WorkerProcess(proc, log_path, env)
    STARTED.append(worker)
    worker.wait_ready()
    return worker


#: Every worker a test started; whatever is still running at the end of the session is killed.
STARTED: list[WorkerProcess] = []


def kill_leftover_workers() -> int:
    alive = [w for w in STARTED if w.proc.poll() is None]
    for worker in alive:
        try:
            worker.kill()
        except ProcessLookupError:
            pass
    return len(alive)


def envelope_for(key_id: str, secret: str, task_name: str, task_id: str, payload: dict[str, Any], *,
                 issued_at: int | None = None) -> dict[str, Any]:
    """The signed envelope header, computed as the README tells another language to (not with worker.envelope)."""
    import hashlib
    import hmac
    import json
    import secrets

    key = hashlib.sha256(secret.encode()).hexdigest().encode()
    canonical = json.dumps([[payload], {}], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ts, nonce = int(time.time()) if issued_at is None else issued_at, secrets.token_hex(16)
    lines = ["hexavox-envelope-v1", key_id, str(ts), nonce, task_name, task_id, hashlib.sha256(canonical).hexdigest()]
    sig = hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()
    return {"v": 1, "kid": key_id, "ts": ts, "nonce": nonce, "sig": sig}


def publish_raw(broker_url: str, task_name: str, payload: Any, *, queue: str, request_id: str | None = None,
                envelope: dict[str, Any] | None = None, body: bytes | str | None = None,
                content_type: str = "application/json") -> str:
    """Publish a job as a service in another language does: Celery protocol 2 with plain kombu; its request id."""
    import json
    import uuid

    from kombu import Connection, Exchange, Producer

    request_id = request_id or str(uuid.uuid4())
    if body is None:
        body = json.dumps([[payload], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    headers: dict[str, Any] = {"lang": "py", "task": task_name, "id": request_id, "root_id": request_id,
                               "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None}
    if envelope is not None:
        headers["hexavox_envelope"] = envelope
    with Connection(broker_url) as conn:
        Producer(conn).publish(body, routing_key=queue, exchange=Exchange(queue, type="direct"), headers=headers,
                               content_type=content_type, content_encoding="utf-8" if isinstance(body, str)
                               else "binary")
    return request_id


class RecordingTransport(Transport):
    """A Sentry transport that keeps every envelope in memory instead of sending it (tests read what would leave)."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def flush(self, timeout: float, callback: Any = None) -> None:
        return None

    def kill(self) -> None:
        return None
