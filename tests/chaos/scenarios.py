"""The fault scenarios of ``make chaos`` (issue 11; docs/reliability.md R1-R10). Each breaks one thing mid-run.

A fault runs in its own thread while the client waits for its answers; it returns a short note for the table.
Progress thresholds are counts of messages the provider has answered for, so a fault lands mid-run whatever
the machine's speed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.harness import Stage

Fault = Callable[[Stage], str]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    env: dict[str, str] = field(default_factory=dict)
    pool: str = "threads"
    concurrency: int = 8
    broker_aof: bool = False
    rabbitmq: bool = False
    beats: int = 0  #: real beat processes; with none, the harness plays beat (relay and reconcile every second)


def _share(stage: Stage, fraction: float) -> int:
    return int(fraction * sum(len(p["to"]) for p in stage.jobs.values()))


def nothing(stage: Stage) -> str:
    return ""


def worker_sigkill(stage: Stage) -> str:
    """R1: the whole worker (main process and pool) SIGKILLed mid-send, replaced a second later."""
    stage.wait_progress(_share(stage, 0.2))
    victim = stage.workers[0]
    victim.kill(signal.SIGKILL)
    victim.proc.wait(10)
    time.sleep(1)
    stage.worker("w0-replacement")
    return "worker 1 SIGKILLed at 20 %, replaced"


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def pool_child_sigkill(stage: Stage) -> str:
    """R2: only the prefork pool children die (OOM killer), three times; the main process replaces them."""
    killed = 0
    for round_ in range(3):
        stage.wait_progress(_share(stage, 0.15 * (round_ + 1)))
        for child in _children(stage.workers[0].proc.pid):
            try:
                signal_child(child)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(1)
    return f"{killed} pool children SIGKILLed in 3 rounds"


def signal_child(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)


def broker_lost(stage: Stage) -> str:
    """R5: the broker Redis killed and restarted without persistence: every queued job and task is gone."""
    stage.wait_progress(_share(stage, 0.02))
    stage.servers.broker.restart(down_seconds=1)
    return "broker Redis (no AOF) SIGKILLed at 2 % sent and restarted empty"


def broker_restart_aof(stage: Stage) -> str:
    """R5: the broker Redis crashes with AOF (appendfsync everysec) and restarts from its log."""
    stage.wait_progress(_share(stage, 0.02))
    stage.servers.broker.restart(down_seconds=1)
    return "broker Redis (AOF everysec) SIGKILLed at 2 % sent and restarted"


def postgres_restart(stage: Stage) -> str:
    """R7: the service's PostgreSQL crashes (stop -m immediate) under load and comes back 3 s later."""
    stage.wait_progress(_share(stage, 0.2))
    stage.servers.service.stop_immediate()
    time.sleep(3)
    stage.servers.service.start()
    return "PostgreSQL stopped -m immediate at 20 %, back after 3 s"


def connections_killed(stage: Stage) -> str:
    """The service's database sessions terminated (pg_terminate_backend) five times during intake and dispatch."""
    dbname = stage.env["HEXAVOX_DATABASE_URL"].rsplit("/", 1)[1]
    killed = 0
    for _ in range(5):
        time.sleep(1.5)
        killed += stage.servers.service.terminate_backends(dbname)
    return f"5 rounds of pg_terminate_backend, {killed} sessions killed"


def guards_down(stage: Stage) -> str:
    """Redis holding the throttle and breaker SIGKILLed during sends, back after 5 s."""
    stage.wait_progress(_share(stage, 0.15))
    stage.servers.guards.kill()
    time.sleep(5)
    stage.servers.guards.start()
    return "throttle/breaker Redis down 5 s at 15 %"


def worker_paused(stage: Stage) -> str:
    """R9: a worker SIGSTOPped past the visibility timeout (10 s) while holding tasks, then resumed."""
    stage.wait_progress(_share(stage, 0.15))
    victim = stage.workers[0]
    victim.kill(signal.SIGSTOP)
    time.sleep(16)
    victim.kill(signal.SIGCONT)
    return "worker 1 SIGSTOPped 16 s (visibility timeout 10 s)"


def shutdowns(stage: Stage) -> str:
    """Warm shutdown (SIGTERM: finish the running task) of one worker, then cold (SIGQUIT) of the other."""
    stage.wait_progress(_share(stage, 0.15))
    first = stage.workers[0]
    first.kill(signal.SIGTERM)
    first.proc.wait(60)
    stage.worker("w0-after-warm")
    stage.wait_progress(_share(stage, 0.45))
    second = stage.workers[1]
    second.kill(signal.SIGQUIT)
    second.proc.wait(60)
    stage.worker("w1-after-cold")
    return "warm shutdown at 15 %, cold shutdown at 45 %, both replaced"


def shuffled_reports(stage: Stage) -> str:
    """Delivery reports arrive shuffled and twice each, through the callbacks queue, while dispatch runs."""
    from providers.registry import get_provider
    from providers.simulated import pending_reports, report_payload
    from worker.celery_app import app
    from worker.policy.delivery_reports import events_to_json
    from worker.settings import get_settings

    provider = get_provider("simulated", get_settings())
    ledger = stage.env["HEXAVOX_SIMULATOR_LEDGER_URL"]
    total = sum(len(p["to"]) for p in stage.jobs.values())
    rng = random.Random(stage.seed)
    sent: set[str] = set()
    deadline = time.monotonic() + 120
    while len(sent) < total and time.monotonic() < deadline:
        rows = [row for row in pending_reports(ledger, int(time.time() * 1000)) if row["provider_ref"] not in sent]
        events = [event for row in rows
                  for event in provider.parse_callback({}, json.dumps(report_payload(row)).encode())]
        batch = events_to_json(events) * 2
        rng.shuffle(batch)
        for first in range(0, len(batch), 25):
            app.send_task("hexavox.internal.apply_reports", args=["simulated", batch[first:first + 25]])
        sent |= {row["provider_ref"] for row in rows}
        time.sleep(0.5)
    return f"{len(sent)} reports sent twice each, shuffled"


def _ambiguity(**extra: str) -> dict[str, str]:
    return {"HEXAVOX_SIMULATOR_AMBIGUOUS_RATE": "0.1", "HEXAVOX_SIMULATOR_LOST_RATE": "0.03",
            "HEXAVOX_SIMULATOR_REJECT_RATE": "0.02", **extra}


ALL: list[Scenario] = [
    Scenario("worker SIGKILL", worker_sigkill),
    # Prefork enforces the task time limit (threads do not); on a loaded 2-core machine 5 s is too tight.
    Scenario("pool child SIGKILL", pool_child_sigkill, pool="prefork", concurrency=2,
             env={"HEXAVOX_TASK_TIME_LIMIT": "30", "HEXAVOX_VISIBILITY_TIMEOUT": "40"}),
    Scenario("broker lost (no persistence)", broker_lost),
    Scenario("broker restart (AOF everysec)", broker_restart_aof, broker_aof=True),
    Scenario("PostgreSQL restart", postgres_restart),
    Scenario("connections killed", connections_killed),
    Scenario("throttle/breaker Redis down", guards_down),
    Scenario("provider answers and requests lost", nothing, env=_ambiguity(HEXAVOX_SIMULATOR_SEED="11")),
    Scenario("two beats", nothing, env=_ambiguity(HEXAVOX_SIMULATOR_SEED="12"), beats=2),
    Scenario("worker paused past visibility timeout", worker_paused),
    Scenario("warm and cold shutdown", shutdowns),
    Scenario("shuffled, duplicated delivery reports", shuffled_reports,
             env={"HEXAVOX_SIMULATOR_DLR_DELAY_MS": "500", "HEXAVOX_DLR_GRACE": "60"}),
    Scenario("RabbitMQ (quorum) worker SIGKILL", worker_sigkill, rabbitmq=True),
]

#: The short form `make test` runs (tests/integration/test_chaos_short.py): under ~90 s on 2 cores.
SHORT = ["broker lost (no persistence)", "connections killed"]


def by_name(names: list[str]) -> list[Scenario]:
    known = {scenario.name: scenario for scenario in ALL}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {list(known)}")
    return [known[name] for name in names]


def unique_name(scenario: Scenario) -> str:
    slug = "".join(ch if ch.isalnum() else "_" for ch in scenario.name.lower())[:30]
    return f"chaos_{slug}_{uuid.uuid4().hex[:6]}"
