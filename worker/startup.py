"""Checks a long-running process (worker, web receiver) makes when it starts, before it takes any work.

Settings refuse unsafe combinations as soon as they are read (worker/settings.py). What needs the
provider drivers is checked here: every configured provider instance is built once, so a typo in
``HEXAVOX_PROVIDERS`` stops the process with one clear line instead of leaving the first message
DISPATCHING. A development run on the simulated provider says so loudly: it sends nothing.
"""

from __future__ import annotations

import sys
from typing import TextIO

from worker.errors import ConfigurationError
from worker.settings import Settings, simulated_providers

__all__ = ["check_at_start", "simulator_warning"]


def simulator_warning(settings: Settings) -> str | None:
    """The warning a run that routes messages to the simulated provider prints, or None."""
    simulated = simulated_providers(settings)
    if not simulated:
        return None
    return (f"hexavox: WARNING: provider(s) {', '.join(simulated)} use the simulated driver: messages routed there "
            "are NOT sent to any phone or mailbox. Set HEXAVOX_PROVIDERS and HEXAVOX_DEFAULT_PROVIDER for real "
            "delivery (HEXAVOX_ENVIRONMENT=production refuses the simulator).")


def check_at_start(settings: Settings, stream: TextIO | None = None) -> None:
    """Validate the providers and warn about the simulator; exit 2 with one line when the configuration is bad.

    ``SystemExit`` rather than an exception: Celery logs and swallows exceptions raised in its start-up
    signals, and the worker would then run with a configuration that cannot send.
    """
    from providers.registry import check_providers

    out = stream or sys.stderr
    try:
        check_providers(settings)
    except ConfigurationError as err:
        print(f"hexavox: configuration error: {err}", file=out, flush=True)
        raise SystemExit(2) from None
    warning = simulator_warning(settings)
    if warning:
        print(warning, file=out, flush=True)
