"""How the simulated provider behaves: rates, times and a seed, from the environment or the provider's options."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.errors import ConfigurationError

__all__ = ["SimulatorConfig"]


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator behaves. Rates are probabilities in 0..1; times are milliseconds."""

    ledger_url: str
    latency_ms: float = 0.0  #: sleep after the ledger write, before answering
    #: How long the caller waits for the answer (default: HEXAVOX_PROVIDER_TIMEOUT). A latency above it is a
    #: timeout after the request arrived: the call is in the ledger and the answer never comes (AMBIGUOUS).
    timeout_ms: float = 0.0
    reject_rate: float = 0.0
    unavailable_rate: float = 0.0
    ambiguous_rate: float = 0.0  #: the call is recorded as received, then the answer is lost
    #: The request is lost on the way: the provider never gets it, the caller sees a timeout (AMBIGUOUS). Reconcile
    #: then finds NOT_FOUND, and only this proves a resend safe.
    lost_rate: float = 0.0
    dlr_delay_ms: float = 0.0  #: time from acceptance until the delivery report is final
    dlr_failure_rate: float = 0.0
    seed: int = 0
    max_rps: float = 0.0  #: 0 means unlimited
    callback_secret: str = ""  #: when set, callbacks must be signed (sign_callback: id, time and body)
    #: When above 0, an acceptance states the provider's price (micro-dollars per SMS segment, else per message),
    #: as priced APIs do; 0 states none, so the configured price table prices the message.
    price_micros: int = 0

    def __post_init__(self) -> None:
        for name in ("reject_rate", "unavailable_rate", "ambiguous_rate", "lost_rate", "dlr_failure_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigurationError(f"simulator {name} must be between 0 and 1, got {getattr(self, name)!r}")
        for name in ("latency_ms", "timeout_ms", "dlr_delay_ms", "max_rps", "price_micros"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"simulator {name} must not be negative, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], default_ledger_url: str) -> SimulatorConfig:
        """Build from strings (environment) or JSON values; unknown keys are refused so typos fail at start-up."""
        fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigurationError(f"unknown simulator option(s) {unknown}; known: {sorted(fields)}")
        kwargs = {key: _convert(key, value, fields[key]) for key, value in values.items()}
        kwargs.setdefault("ledger_url", default_ledger_url)
        return cls(**kwargs)


def _convert(key: str, value: object, type_name: str) -> Any:
    converter = {"float": float, "int": int}.get(type_name, str)
    try:
        return converter(value)
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"simulator option {key} must be {type_name}, got {value!r}") from err
