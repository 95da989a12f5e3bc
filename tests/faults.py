"""Private servers a fault test may stop, kill, flush and restart: never the machine's shared services.

* :class:`PrivateRedis`: ``redis-server`` on a free port in a temporary directory, with or without AOF.
* :class:`PrivatePostgres`: a cluster of its own (``initdb`` + ``pg_ctl``, run as the ``postgres`` user when
  this process is root, since PostgreSQL refuses to run as root), trust auth on a free port.
* :func:`rabbitmq_vhost`: a vhost of its own on the shared RabbitMQ (the broker itself is never restarted).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["free_port", "PrivateRedis", "PrivatePostgres", "rabbitmq_vhost"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, *, up: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not {'open' if up else 'closed'} after {timeout}s")


@dataclass
class PrivateRedis:
    """A redis-server of this test's own; ``appendonly`` picks AOF (fsync every second) or no persistence."""

    appendonly: bool = False
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hexavox-redis-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> PrivateRedis:
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
               "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
               "--logfile", str(self.workdir / "redis.log"), "--maxmemory-policy", "noeviction"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        _wait_port(self.port, up=True)
        return self

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does (AOF keeps what was fsynced, at most ~1 s is lost)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        _wait_port(self.port, up=False)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for version in sorted(os.listdir("/usr/lib/postgresql"), reverse=True) if Path("/usr/lib/postgresql").is_dir() \
            else []:
        candidate = Path("/usr/lib/postgresql") / version / "bin" / name
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(f"{name} not found: apt-get install postgresql")


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test's own; ``stop_immediate`` is a crash, ``start`` its recovery."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hexavox-pg-")))

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                                     "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
        # fsync off is safe for what the tests do (a killed server, not a lost OS: the page cache survives);
        # synchronous_commit stays on, or `stop -m immediate` would undo commits the service was told about.
        conf = ("\nfsync = off\nfull_page_writes = off\nmax_connections = 200\n"
                f"unix_socket_directories = '{self.workdir}'\nlisten_addresses = '127.0.0.1'\n")
        with open(self.datadir / "postgresql.conf", "a") as handle:
            handle.write(conf)
        return self.start()

    def _ctl(self, *args: str) -> None:
        cmd = [_pg_bin("pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60", *args]
        subprocess.run(_as_postgres(cmd), check=True, capture_output=True, timeout=90)

    def start(self) -> PrivatePostgres:
        self._ctl("-o", f"-p {self.port}", "-l", str(self.workdir / "pg.log"), "start")
        _wait_port(self.port, up=True)
        return self

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: every backend dies at once, recovery replays the WAL on start."""
        self._ctl("-m", "immediate", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def terminate_backends(self, dbname: str) -> int:
        """``pg_terminate_backend`` every other session on ``dbname``: AdminShutdown in each of them."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall()
        return len(rows)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_immediate()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def rabbitmq_vhost(prefix: str = "hexavox-chaos") -> Iterator[str]:
    """An AMQP URL on a vhost of its own (guest user), deleted afterwards with everything in it."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
