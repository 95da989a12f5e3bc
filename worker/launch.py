"""What ``hexavox worker|beat|flower`` check and set before handing over to Celery.

* **Flower outside development needs authentication.** It shows every task and can revoke them and shut
  workers down, so ``hexavox flower`` refuses to start unless Flower's own authentication is configured:
  ``--basic-auth=user:password`` (or ``FLOWER_BASIC_AUTH``), or OAuth with ``--auth=REGEX`` (or
  ``FLOWER_AUTH``) and an ``--auth_provider``. Only ``HEXAVOX_ENVIRONMENT=development`` may run it open.
* **Metrics of every pool process.** With ``HEXAVOX_METRICS_PORT`` set, prometheus-client's multiprocess mode
  must be on before the worker imports it, or prefork children's samples are lost: a private
  ``PROMETHEUS_MULTIPROC_DIR`` is created when none is given, and a given one is emptied of the files of a
  previous run (each worker needs a folder of its own).
"""

from __future__ import annotations

import tempfile
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from worker.errors import ConfigurationError
from worker.telemetry.exposition import MULTIPROC_ENV

__all__ = ["check_flower_auth", "prepare_metrics_dir"]

_AUTH_FLAGS = ("--basic-auth", "--basic_auth", "--auth")
_AUTH_ENV = ("FLOWER_BASIC_AUTH", "FLOWER_AUTH")


def check_flower_auth(extra: Sequence[str], environment: str, env: MutableMapping[str, str]) -> None:
    """Raise :class:`ConfigurationError` when Flower would start without authentication outside development."""
    if environment == "development":
        return
    flagged = any(arg.split("=", 1)[0] in _AUTH_FLAGS for arg in extra)
    if flagged or any(env.get(name, "").strip() for name in _AUTH_ENV):
        return
    raise ConfigurationError(
        f"Flower shows every task and can stop workers: with HEXAVOX_ENVIRONMENT={environment} it needs "
        "--basic-auth=user:password (or FLOWER_BASIC_AUTH), or OAuth with --auth and --auth_provider")


def prepare_metrics_dir(env: MutableMapping[str, str]) -> Path:
    """Set (or empty) ``PROMETHEUS_MULTIPROC_DIR`` in ``env`` for a worker about to start; returns the folder."""
    given = env.get(MULTIPROC_ENV, "").strip()
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="hexavox-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    env[MULTIPROC_ENV] = str(folder)
    return folder
