"""The operator's first hour, through the installed `hexavox` and `celery` commands run as subprocesses.

Merchants from the shell (create, show, list, set-limits), migrations that say what they did, and
one clear line instead of a traceback for a missing database or a mistyped provider option.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factories import make_tenant
from support import REPO

BIN = Path(sys.executable).parent
HEXAVOX = BIN / "hexavox"


def run(env: dict[str, str], *args: str, cwd: Path = REPO, program: Path = HEXAVOX,
        timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(program), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def bare_environment(tmp_path: Path) -> dict[str, str]:
    """The shell of a new operator: no HEXAVOX_* variable at all."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HEXAVOX_", "SENTRY_"))}
    env["HOME"] = str(tmp_path)
    return env


def one_line_without_traceback(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def ok(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- 9. merchants from the shell ---------------------------------------------------------------------------------

def test_merchant_create_show_list_and_set_limits(hexavox_env: dict[str, str]) -> None:
    env = {**os.environ, **hexavox_env}
    make_tenant()
    # When an operator creates a merchant giving only its id and an SMS limit
    created = ok(run(env, "merchant", "create", "gym-a", "--sms", "500", "--name", "Gym A"))
    # Then it has the SMS limit given and the documented non-zero defaults for the rest, and its signing secret
    assert created["limits"] == {"smsLimit": 500, "voiceMinutesLimit": 10, "emailLimit": 100}
    assert (created["displayName"], created["active"]) == ("Gym A", True)
    assert created["webhookSecret"].startswith("whsec_")
    # And creating it again is refused in one line, changing nothing
    again = run(env, "merchant", "create", "gym-a", "--sms", "1")
    assert again.returncode == 1 and "exists" in one_line_without_traceback(again)
    # When one limit is changed, Then only that one changes
    changed = ok(run(env, "merchant", "set-limits", "gym-a", "--voice", "60"))
    assert changed["limits"] == {"smsLimit": 500, "voiceMinutesLimit": 60, "emailLimit": 100}
    # And show and list print seed 003's MerchantView (the secret only when asked for)
    shown = ok(run(env, "merchant", "show", "gym-a"))
    assert shown == changed and "webhookSecret" not in shown
    assert ok(run(env, "merchant", "show", "gym-a", "--webhook-secret"))["webhookSecret"] == created["webhookSecret"]
    ok(run(env, "merchant", "create", "clinic-b", "--timezone", "Europe/London", "--countries", "GB"))
    assert [m["merchantId"] for m in ok(run(env, "merchant", "list"))] == ["clinic-b", "gym-a"]


@pytest.mark.parametrize(("args", "says"), [
    (("set-limits", "nobody", "--sms", "5"), "E803"),
    (("set-limits", "gym-a"), "--sms"),
    (("create", "bad/id"), "E413"),
    (("create", "gym-b", "--timezone", "Mars/Olympus"), "time zone"),
])
def test_merchant_commands_refuse_bad_input_in_one_line(hexavox_env: dict[str, str], args: tuple[str, ...],
                                                         says: str) -> None:
    env = {**os.environ, **hexavox_env}
    make_tenant()
    ok(run(env, "merchant", "create", "gym-a"))
    done = run(env, "merchant", *args)
    assert done.returncode == 1 and says in one_line_without_traceback(done)


# --- 13, 14. the database: what a migration did, and a missing one -----------------------------------------------

def test_db_upgrade_says_what_it_did(tmp_path: Path) -> None:
    # Given a new operator's shell and an embedded database that does not exist yet
    env = bare_environment(tmp_path)
    # When it is upgraded twice, Then the first says from which revision to which, the second that nothing was to do
    first = run(env, "db", "upgrade", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "upgraded from no revision (empty schema) to revision " in first.stdout
    second = run(env, "db", "upgrade", cwd=tmp_path)
    assert "is already at revision" in second.stdout and "nothing to upgrade" in second.stdout


def test_status_with_no_environment_says_what_to_do_and_creates_no_database(tmp_path: Path) -> None:
    # Given a new operator's shell in an empty folder
    env = bare_environment(tmp_path)
    # When they ask for a request's status
    done = run(env, "status", "0b7f9e55-2f4c-4cf5-9c1e-1d2b7e0a4f11", cwd=tmp_path)
    # Then one line says there is no database and what to set, exit 1, and no empty SQLite file was left behind
    line = one_line_without_traceback(done)
    assert done.returncode == 1 and "no database at" in line and "HEXAVOX_DATABASE_URL" in line
    assert not (tmp_path / ".hexavox").exists()


def test_db_upgrade_against_a_missing_database_is_one_line(postgres_server: str, tmp_path: Path) -> None:
    # Given HEXAVOX_DATABASE_URL naming a PostgreSQL database that was never created
    url = postgres_server.rsplit("/", 1)[0] + "/hexavox_never_created"
    env = {**bare_environment(tmp_path), "HEXAVOX_DATABASE_URL": url}
    # When the operator runs the migrations
    done = run(env, "db", "upgrade", cwd=tmp_path)
    # Then one line names the database, what is wrong and what to do
    line = one_line_without_traceback(done)
    assert done.returncode == 1
    assert "hexavox_never_created" in line and "does not exist" in line and "createdb" in line


# --- 11, 12. provider configuration at start-up -------------------------------------------------------------------

def test_a_mistyped_provider_option_stops_the_worker_at_start_with_one_line(tmp_path: Path) -> None:
    # Given a provider configured with `apikey` for `api_key`
    env = {**bare_environment(tmp_path), "HEXAVOX_DATA_DIR": str(tmp_path / "data"), "HEXAVOX_PROVIDERS": json.dumps(
        {"acme": {"driver": "http_sms", "base_url": "https://sms.example/", "apikey": "k"}}),
        "HEXAVOX_DEFAULT_PROVIDER": "acme"}
    # When a worker starts
    done = run(env, "-A", "worker", "worker", "-P", "threads", "-c", "1", "-n", "typo@%h", cwd=tmp_path,
               program=BIN / "celery", timeout=90)
    # Then it exits at once, naming the provider and the unknown option, before taking any message
    assert done.returncode == 2
    assert "provider 'acme' (http_sms): unknown options apikey" in done.stderr
    assert "Traceback" not in done.stderr and "ready" not in done.stderr


def test_a_development_worker_on_the_simulator_warns_at_start(tmp_path: Path) -> None:
    # Given a new operator's shell (the default provider is the simulator)
    env = {**bare_environment(tmp_path), "HEXAVOX_DATA_DIR": str(tmp_path / "data")}
    # When a worker starts
    worker = subprocess.Popen([str(BIN / "celery"), "-A", "worker", "worker", "-P", "threads", "-c", "1",
                               "-n", "warn@%h", "-Q", "admin"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    # Then the first thing it prints says that messages are not really sent, and how to change that
    assert "WARNING" in first and "simulated" in first and "NOT sent" in first and "HEXAVOX_PROVIDERS" in first


def test_a_closed_output_pipe_does_not_undo_a_merchant_create(hexavox_env: dict[str, str]) -> None:
    from schema.models import Merchant
    from worker.db import session_scope

    # Given an operator piping the output into a command that exits at once (`... | head -0`)
    make_tenant()
    creating = subprocess.Popen([str(HEXAVOX), "merchant", "create", "gym-a"], cwd=REPO, env={**os.environ,
                                **hexavox_env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert creating.stdout is not None
    creating.stdout.close()
    creating.wait(timeout=60)
    # Then the merchant was created all the same: the answer is printed after the commit
    with session_scope() as session:
        assert session.query(Merchant).filter_by(external_id="gym-a").count() == 1


def test_a_production_worker_on_the_simulator_is_refused_in_one_line(tmp_path: Path) -> None:
    # Given a production environment that configures no provider (so the simulator would take every message)
    env = {**bare_environment(tmp_path), "HEXAVOX_ENVIRONMENT": "production",
           "HEXAVOX_DATABASE_URL": "postgresql://hx:pw@127.0.0.1/hx", "HEXAVOX_BROKER_URL": "redis://:pw@127.0.0.1/0",
           "HEXAVOX_REDIS_URL": "redis://:pw@127.0.0.1/1", "HEXAVOX_SERVICE_KEY": "k" * 40}
    # When the worker is started, Then it refuses, saying why and what to set
    done = run(env, "worker", "-n", "prod@%h", cwd=tmp_path)
    line = one_line_without_traceback(done)
    assert done.returncode == 2
    assert "refuses the simulated provider" in line and "HEXAVOX_PROVIDERS" in line
