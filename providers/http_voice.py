"""HTTP voice driver: one text-to-speech call per message.

The wire format and the code tables are in providers/http_voice_shape.py, the transport and the reading of outcomes
in providers/http_driver.py; this module builds a configured instance.
"""

from __future__ import annotations

from typing import Any

from providers.http_common import OptionReader, make_client
from providers.http_driver import HttpProvider
from providers.http_voice_shape import (
    CALL_STATUSES,
    DEFAULT_RING_SECONDS,
    VOICE_LOOKUP_CODES,
    VOICE_SEND_CODES,
    VoiceShape,
)
from worker.settings import Settings

__all__ = ["HttpVoiceProvider", "VOICE_SEND_CODES", "VOICE_LOOKUP_CODES", "CALL_STATUSES", "DEFAULT_RING_SECONDS"]

_OPTIONS = frozenset({"base_url", "api_key", "caller_id", "max_rps", "timeout", "webhook_secret"})


class HttpVoiceProvider(HttpProvider):
    """One configured voice API. Options: ``base_url``, ``api_key`` (secret), ``caller_id`` (default caller id),
    ``max_rps``, ``timeout`` (seconds, default HEXAVOX_PROVIDER_TIMEOUT), ``webhook_secret`` (secret)."""

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], settings: Settings) -> HttpVoiceProvider:
        read = OptionReader("http_voice", name, options, _OPTIONS)
        client = make_client(read.text("base_url"), read.number("timeout", settings.provider_timeout),
                             VoiceShape.auth_headers(read.text("api_key")))
        return cls(name, VoiceShape(read.text("caller_id", "")), client, max_rps=read.number("max_rps", 0.0),
                   webhook_secret=read.text("webhook_secret", "") or None)
