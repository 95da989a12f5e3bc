"""What a new operator reads: the README and deploy/ say what the code does.

Each check names a gap an operator fell into: undocumented provider options (found only in the
code), worker commands without node names, a sample environment that ran production on the
simulator, and a quick start that never created a merchant.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from providers import http_sms, http_voice, smtp_email
from providers.registry import DRIVERS, check_providers
from providers.simulated import SimulatorConfig
from worker.settings import DEFAULT_NEW_MERCHANT_LIMITS, SIMULATED_DRIVERS, load_settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()

#: Every option each driver's from_options accepts (the simulator's are its config fields).
DRIVER_OPTIONS = {
    "http_sms": http_sms._OPTIONS,
    "http_voice": http_voice._OPTIONS,
    "smtp_email": smtp_email._OPTIONS,
    "simulated": frozenset(f.name for f in dataclasses.fields(SimulatorConfig)),
}


def _driver_section(driver: str) -> str:
    match = re.search(rf"^### `{driver}`\n(.*?)(?=^##)", README, re.S | re.M)
    assert match, f"README has no '### `{driver}`' section under Providers"
    return match.group(1)


def test_every_driver_is_covered() -> None:
    assert set(DRIVER_OPTIONS) == set(DRIVERS)


@pytest.mark.parametrize("driver", sorted(DRIVER_OPTIONS))
def test_every_driver_option_and_its_delivery_report_body_are_in_the_readme(driver: str) -> None:
    section = _driver_section(driver)
    documented = set(re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|", section, re.M))
    names = {name for cell in documented for name in re.findall(r"`(\w+)`", cell)}
    assert names == set(DRIVER_OPTIONS[driver])
    assert "Delivery report" in section and "{" in section.split("Delivery report", 1)[1]


def _celery_worker_commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*celery -A worker worker\b", line)]


def test_the_readme_worker_commands_name_their_nodes_and_log_at_info() -> None:
    commands = _celery_worker_commands(README)
    assert len(commands) >= 3
    for command in commands:
        args = shlex.split(command.split("#")[0])
        assert "-n" in args and args[args.index("-n") + 1].endswith("@%h"), command
        assert "-l" in args and args[args.index("-l") + 1] == "INFO", command
    names = [shlex.split(c)[shlex.split(c).index("-n") + 1] for c in commands]
    assert len(set(names)) == len(names), "two workers with one node name look like one node"


def test_the_deploy_worker_commands_name_their_nodes_and_log_at_info() -> None:
    compose = (REPO / "deploy" / "compose.yaml").read_text()
    workers = re.findall(r'command: \["worker", (.*?)\]', compose, re.S)
    assert len(workers) == 4 and all('"-n"' in w and '"-l", "INFO"' in w for w in workers)
    unit = (REPO / "deploy" / "systemd" / "hexavox-worker@.service").read_text()
    assert "-n %i@%H" in unit and "-l ${LOGLEVEL}" in unit and "LOGLEVEL=INFO" in unit


def test_the_quick_start_creates_a_merchant_before_its_first_otp_and_says_what_limits_it_gets() -> None:
    real = README.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    assert real.index("hexavox merchant create") < real.index("hexavox send hexavox.sms.send.v1")
    assert real.index("hexavox tenant create") < real.index("hexavox merchant create")
    limits = DEFAULT_NEW_MERCHANT_LIMITS
    assert (f"**{limits['SMS']} SMS segments, {limits['VOICE']} voice minutes and {limits['EMAIL']} emails**"
            in README)


def _env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / "deploy" / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def test_env_example_is_a_production_configuration_that_starts(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    # Given deploy/env.example as an operator copies it
    example = _env_example()
    for name, value in example.items():
        if name.startswith("HEXAVOX_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("HEXAVOX_DATA_DIR", str(tmp_path))
    # Then it is production, its default provider is a real (configured, not simulated) one
    providers = json.loads(example["HEXAVOX_PROVIDERS"])
    assert example["HEXAVOX_ENVIRONMENT"] == "production"
    assert providers[example["HEXAVOX_DEFAULT_PROVIDER"]]["driver"] not in SIMULATED_DRIVERS
    # And the settings and every provider instance pass the start-up checks
    settings = load_settings()
    assert check_providers(settings) == sorted(providers)
    assert settings.result_backend.startswith("redis://")  # client services get it: never the main database
