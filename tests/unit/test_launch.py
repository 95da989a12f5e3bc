"""hexavox flower refuses to run open outside development; hexavox worker gets a clean metrics folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.launch import check_flower_auth, prepare_metrics_dir


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_flower_without_authentication_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ConfigurationError, match="basic-auth"):
        check_flower_auth(["--port=5555"], environment, {})


@pytest.mark.parametrize(("extra", "env"), [
    (["--basic-auth=ops:pw"], {}),
    (["--basic_auth=ops:pw"], {}),
    (["--auth=.*@example\\.com", "--auth_provider=flower.views.auth.GithubLoginHandler"], {}),
    ([], {"FLOWER_BASIC_AUTH": "ops:pw"}),
    ([], {"FLOWER_AUTH": ".*@example\\.com"}),
])
def test_flower_with_basic_auth_or_oauth_is_allowed(extra: list[str], env: dict[str, str]) -> None:
    check_flower_auth(extra, "production", env)


def test_flower_may_run_open_in_development_only() -> None:
    check_flower_auth([], "development", {})
    with pytest.raises(ConfigurationError):
        check_flower_auth([], "production", {"FLOWER_BASIC_AUTH": "  "})


def test_the_cli_refuses_to_start_flower_open_in_production(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from worker import cli

    monkeypatch.setattr("os.execvp", lambda *a: pytest.fail("flower must not start"))
    monkeypatch.setattr("worker.settings.get_settings", lambda: _Prod())
    assert cli.main(["flower", "--port=5555"]) == 2
    assert "basic-auth" in capsys.readouterr().err


class _Prod:
    environment = "production"
    metrics_port = 0


def test_a_worker_gets_a_metrics_folder_of_its_own_emptied_of_a_previous_run(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    made = prepare_metrics_dir(env)
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(made) and made.is_dir()

    given = tmp_path / "prom"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "keep.txt").write_text("not ours")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(given)}
    assert prepare_metrics_dir(env) == given
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    made.rmdir()


def test_hexavox_worker_passes_celery_options_through_and_sets_up_the_metrics_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from worker import cli
    from worker.settings import reset_settings

    calls: list[list[str]] = []
    monkeypatch.setattr("os.execvp", lambda _file, argv: calls.append(argv))
    monkeypatch.setenv("HEXAVOX_METRICS_PORT", "9109")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    reset_settings()
    try:
        cli.main(["worker", "--pool=threads", "-Q", "otp", "-n", "otp@%h"])
    finally:
        reset_settings()
    [argv] = calls
    assert argv[-8:] == ["-A", "worker", "worker", "--pool=threads", "-Q", "otp", "-n", "otp@%h"]
    assert (tmp_path / "prom").is_dir()
