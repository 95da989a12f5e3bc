"""HTTP SMS driver for the two SMS API styles in the seeds, chosen with the ``shape`` option.

The wire formats are in providers/http_sms_shapes.py, the code tables in providers/http_sms_codes.py, the transport
and the reading of outcomes in providers/http_driver.py; this module builds a configured instance. The ``hexa``
shape (seed 000) also has the many-numbers call the batch dispatch path uses (:meth:`HexaSmsProvider.send_many`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.http_common import OptionReader, make_client
from providers.http_driver import BulkHttpProvider, HttpProvider
from providers.http_sms_codes import (
    DLR_STATUSES,
    HEXA_BULK_CODES,
    HEXA_LOOKUP_CODES,
    HEXA_SEND_CODES,
    PANEL_FIELDS,
    PANEL_LOOKUP_CODES,
    PANEL_REPORT_CODES,
    PANEL_SEND_CODES,
)
from providers.http_sms_shapes import HexaShape, PanelShape, hexa_options, hexa_ref, message_id_from_ref
from worker.errors import ConfigurationError
from worker.settings import Settings

__all__ = [
    "HttpSmsProvider",
    "HexaSmsProvider",
    "HEXA_SEND_CODES",
    "HEXA_BULK_CODES",
    "HEXA_LOOKUP_CODES",
    "PANEL_SEND_CODES",
    "PANEL_LOOKUP_CODES",
    "PANEL_REPORT_CODES",
    "DLR_STATUSES",
    "SHAPES",
    "hexa_ref",
    "hexa_options",
    "message_id_from_ref",
]

SHAPES = ("hexa", "panel")
_OPTIONS = frozenset({"base_url", "api_key", "sender", "shape", "max_rps", "timeout", "dlr_url", "webhook_secret"}
                     ).union(PANEL_FIELDS)


def _panel_fields(name: str, shape: str, read: OptionReader, options: Mapping[str, Any]) -> dict[str, str]:
    """The configured :data:`PANEL_FIELDS` as request fields. Hexa has no such parameters, so setting one there is a
    mistake to catch at start-up, as is a blank route: the panel would pick one itself."""
    if shape != "panel":
        if given := sorted(PANEL_FIELDS.keys() & options.keys()):
            raise ConfigurationError(f"provider {name!r}: {', '.join(given)} only apply to the panel shape")
        return {}
    values = {field: read.text(option, default).strip() for option, (field, default) in PANEL_FIELDS.items()}
    if not values["route"]:
        raise ConfigurationError(f"provider {name!r}: route must not be blank, the panel always gets one")
    return {field: value for field, value in values.items() if value}


class HttpSmsProvider(HttpProvider):
    """One configured SMS API. Options: ``base_url``, ``api_key`` (secret), ``shape`` ("hexa" | "panel"),
    ``sender`` (default sender id), ``max_rps``, ``timeout`` (seconds, default HEXAVOX_PROVIDER_TIMEOUT),
    ``dlr_url`` (hexa only: where the provider posts delivery reports), ``webhook_secret`` (secret); panel only:
    ``route`` (default "4", transactional), ``dlt_entity_id``, ``dlt_template_id``, ``flow_id`` (sent when set)."""

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], settings: Settings) -> HttpSmsProvider:
        """A panel instance, or a :class:`HexaSmsProvider` (the hexa API has a many-numbers call)."""
        read = OptionReader("http_sms", name, options, _OPTIONS)
        shape_name = read.text("shape", "hexa")
        if shape_name not in SHAPES:
            raise ConfigurationError(f"provider {name!r}: shape must be one of {', '.join(SHAPES)}")
        if shape_name != "hexa" and options.get("dlr_url"):
            raise ConfigurationError(f"provider {name!r}: dlr_url is set in the panel, not per request")
        sender, panel_fields = read.text("sender", ""), _panel_fields(name, shape_name, read, options)
        timeout, api_key = read.number("timeout", settings.provider_timeout), read.text("api_key")
        max_rps, secret = read.number("max_rps", 0.0), read.text("webhook_secret", "") or None
        if shape_name == "hexa":
            hexa = HexaShape(sender, read.text("dlr_url", ""))
            client = make_client(read.text("base_url"), timeout, hexa.auth_headers(api_key))
            return HexaSmsProvider(name, hexa, client, max_rps=max_rps, webhook_secret=secret)
        client = make_client(read.text("base_url"), timeout, PanelShape.auth_headers(api_key))
        return cls(name, PanelShape(sender, panel_fields), client, max_rps=max_rps, webhook_secret=secret)


class HexaSmsProvider(BulkHttpProvider, HttpSmsProvider):
    """The seed-000 API: single sends, and :meth:`send_many` for many numbers in one request."""

    def __repr__(self) -> str:
        return f"HttpSmsProvider(name={self.name!r}, shape=HexaShape, base_url={self._client.base_url})"
