"""The explicit list of provider drivers, and the configured provider instances.

Adding a driver touches its own module and one line of ``DRIVERS``. Drivers are imported
lazily, so a deployment that never uses SMTP never imports it. Instances are named in
``HEXAVOX_PROVIDERS`` (see worker/settings.py); each names its driver and options.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Protocol

from providers.base import Provider
from worker.errors import ConfigurationError
from worker.settings import Settings, get_settings

__all__ = ["DRIVERS", "get_provider", "provider_names", "reset_providers", "check_providers"]

DRIVERS: dict[str, str] = {
    "simulated": "providers.simulated:SimulatedProvider",
    "http_sms": "providers.http_sms:HttpSmsProvider",
    "http_voice": "providers.http_voice:HttpVoiceProvider",
    "smtp_email": "providers.smtp_email:SmtpEmailProvider",
}


class DriverClass(Protocol):
    """A driver class builds an instance from its configured options."""

    def from_options(self, name: str, options: dict[str, Any], settings: Settings) -> Provider: ...


_instances: dict[str, Provider] = {}
_lock = threading.Lock()


def _driver_class(driver: str) -> DriverClass:
    try:
        module_name, _, attr = DRIVERS[driver].partition(":")
    except KeyError:
        raise ConfigurationError(f"unknown provider driver {driver!r}; known: {', '.join(sorted(DRIVERS))}") from None
    cls: DriverClass = getattr(importlib.import_module(module_name), attr)
    return cls


def get_provider(name: str, settings: Settings | None = None) -> Provider:
    """The provider instance called ``name``, built once per process."""
    settings = settings or get_settings()
    with _lock:
        if name not in _instances:
            options = dict(settings.providers.get(name) or {})
            if not options:
                raise ConfigurationError(f"provider {name!r} is not configured in HEXAVOX_PROVIDERS")
            driver = str(options.pop("driver"))
            _instances[name] = _driver_class(driver).from_options(name, options, settings)
        return _instances[name]


def check_providers(settings: Settings) -> list[str]:
    """Build every configured instance once and throw it away, so a bad option stops the process at start-up.

    Each driver's ``from_options`` refuses unknown keys (``apikey`` for ``api_key``) and bad values; built
    lazily, such a typo surfaced only at the first dispatch, with the message stuck DISPATCHING. The default
    provider must be configured too. Returns the instance names checked; raises :class:`ConfigurationError`.
    """
    if settings.default_provider not in settings.providers:
        raise ConfigurationError(f"HEXAVOX_DEFAULT_PROVIDER {settings.default_provider!r} is not configured in "
                                 f"HEXAVOX_PROVIDERS (configured: {', '.join(sorted(settings.providers)) or 'none'})")
    for name, configured in sorted(settings.providers.items()):
        options = dict(configured)
        instance = _driver_class(str(options.pop("driver"))).from_options(name, options, settings)
        close = getattr(instance, "close", None)
        if callable(close):
            close()
    return sorted(settings.providers)


def provider_names(settings: Settings | None = None) -> list[str]:
    return sorted((settings or get_settings()).providers)


def reset_providers() -> None:
    """Forget built instances (tests change HEXAVOX_PROVIDERS between cases)."""
    with _lock:
        _instances.clear()
