"""`make chaos`: run the fault scenarios on private servers, print the audit table, exit 1 on any loss.

    python tests/chaos/run.py                 # every scenario, 1,000 messages each
    python tests/chaos/run.py --short         # the short form `make test` runs (fewer scenarios and messages)
    python tests/chaos/run.py --only "worker SIGKILL" --messages 2000 --seed 7

Exit status 1 when any scenario lost, duplicated (two accepted provider calls for one message), double charged
or left unsettled a message; the seed is printed so a failing run can be repeated.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

from chaos import scenarios  # noqa: E402
from chaos.harness import (  # noqa: E402
    FAST_ENV,
    Outcome,
    Servers,
    Stage,
    audit,
    collect_answers,
    settle,
    submit,
    use_env,
)
from faults import rabbitmq_vhost  # noqa: E402


def run_scenario(servers: Servers, scenario: scenarios.Scenario, messages: int, seed: int,
                 settle_timeout: float) -> Outcome:
    if servers.broker.appendonly != scenario.broker_aof:
        servers.broker.appendonly = scenario.broker_aof
        servers.broker.restart()
    name = scenarios.unique_name(scenario)
    database_url, ledger_url = servers.fresh(name)
    with contextlib.ExitStack() as stack:
        broker_url = stack.enter_context(rabbitmq_vhost()) if scenario.rabbitmq else servers.broker.url + "/0"
        env = {**FAST_ENV, "HEXAVOX_DATABASE_URL": database_url, "HEXAVOX_BROKER_URL": broker_url,
               "HEXAVOX_REDIS_URL": servers.guards.url + "/0", "HEXAVOX_SIMULATOR_LEDGER_URL": ledger_url,
               "HEXAVOX_DATA_DIR": str(servers.workdir / name), "HEXAVOX_SIMULATOR_SEED": str(seed), **scenario.env}
        use_env(env)
        return _run(servers, scenario, env, name, messages, seed, settle_timeout, ledger_url)
    raise AssertionError("unreachable")


def _run(servers: Servers, scenario: scenarios.Scenario, env: dict[str, str], name: str, messages: int, seed: int,
         settle_timeout: float, ledger_url: str) -> Outcome:
    from factories import make_merchant, make_tenant

    workdir = servers.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    tenant = make_tenant()
    merchant_pk = make_merchant(tenant, "gym-a", sms=100_000)
    stage = Stage(scenario.name, servers, env, workdir, seed, sweeping=scenario.beats == 0)
    client = None
    notes: list[str] = []
    try:
        for index in range(2):
            stage.worker(f"w{index}", pool=scenario.pool, concurrency=scenario.concurrency)
        for _ in range(scenario.beats):
            stage.beat()
        client = submit(stage, tenant, messages)
        fault = threading.Thread(target=lambda: notes.append(_guarded(scenario.fault, stage)), daemon=True)
        fault.start()
        collect_answers(stage, client)
        fault.join(180)
        ids, lost, codes, seconds = settle(stage, settle_timeout)
        outcome = audit(stage, ids, lost, seconds, ledger_url, merchant_pk)
        if codes:
            notes.append("refused: " + ", ".join(f"{code} x{count}" for code, count in sorted(codes.items())))
    finally:
        if client is not None:
            client.close()
        stage.stop_all()
    outcome.note = "; ".join(note for note in notes if note)
    return outcome


def _guarded(fault: scenarios.Fault, stage: Stage) -> str:
    try:
        return fault(stage)
    except Exception as err:
        traceback.print_exc()
        return f"fault failed: {err}"


def table(outcomes: list[Outcome]) -> str:
    lines = ["| scenario | messages | lost | duplicate sends | double charges | stuck | unanswered jobs"
             " | time to FINAL | jobs re-published by the client | fault |", "|---" * 10 + "|"]
    for o in outcomes:
        lines.append(f"| {o.scenario} | {o.messages:,} | {o.lost} | {o.duplicated} | {o.double_charged} | {o.stuck}"
                     f" | {o.unanswered_jobs} | {o.seconds_to_final:.0f} s | {o.republished_jobs} | {o.note} |")
    return "\n".join(lines)


def _exit_on_term(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the short form: a few scenarios, fewer messages")
    parser.add_argument("--only", action="append", default=[], help="run this scenario (repeatable)")
    parser.add_argument("--messages", type=int, default=None, help="messages per scenario (default 1000; short 100)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_term)  # so the private servers and workers are stopped on the way out
    chosen = scenarios.by_name(args.only or (scenarios.SHORT if args.short else [s.name for s in scenarios.ALL]))
    messages = args.messages or (100 if args.short else 1000)
    print(f"chaos: {len(chosen)} scenario(s), {messages} messages each, seed {args.seed}", flush=True)
    servers = Servers().start()
    outcomes: list[Outcome] = []
    try:
        for scenario in chosen:
            began = time.monotonic()
            outcome = run_scenario(servers, scenario, messages, args.seed, args.settle_timeout)
            outcomes.append(outcome)
            print(f"  {scenario.name}: {'ok' if outcome.ok else 'FAILED'} ({time.monotonic() - began:.0f} s) "
                  f"{outcome}", flush=True)
    finally:
        servers.stop()
    print(table(outcomes))
    failed = [o.scenario for o in outcomes if not o.ok]
    if failed:
        print(f"FAILED: {failed} (seed {args.seed}); worker logs in {servers.workdir}")
        return 1
    shutil.rmtree(servers.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
