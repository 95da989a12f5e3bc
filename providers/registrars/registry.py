"""The configured registrar (HEXAVOX_REGISTRAR), built from the settings on each call: it holds no connections."""

from __future__ import annotations

from providers.registrars.base import Registrar
from providers.registrars.simulated import SimulatedRegistrar
from worker.errors import ConfigurationError
from worker.settings import Settings

__all__ = ["get_registrar"]


def get_registrar(settings: Settings) -> Registrar:
    if settings.registrar == "simulated":
        return SimulatedRegistrar(settings.registrar, settings.registrar_options, settings.registrar_webhook_secret,
                                  settings.webhook_tolerance)
    raise ConfigurationError(f"HEXAVOX_REGISTRAR: no registrar driver {settings.registrar!r} (known: simulated)")
