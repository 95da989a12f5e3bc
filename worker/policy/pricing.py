"""What a message costs us: the provider's price when its answer states one, else the configured price table.

Intake records ``units x HEXAVOX_UNIT_PRICES[channel]`` on every accepted message (a refused one costs nothing);
dispatch replaces it with the provider's own price when the driver's answer carries one (``SendResult.cost_micros``)
and marks the message ``provider_priced``; a call settled with its real minutes is repriced from the table unless
its provider priced it. The usage report adds these costs up (see :mod:`worker.policy.usage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, case

from worker.policy.transitions import MESSAGE_COLUMNS

__all__ = ["table_cost", "provider_cost_fields", "repriced_cost"]


def table_cost(prices: Mapping[str, int], channel: str, units: int) -> int:
    """``units`` of ``channel`` at the configured price, in micro-dollars."""
    return max(0, units) * int(prices.get(channel, 0))


def provider_cost_fields(cost_micros: int | None) -> dict[str, Any]:
    """Transition fields that record a provider's stated price; none when its answer stated none."""
    if cost_micros is None or cost_micros < 0:
        return {}
    return {"cost_micros": cost_micros, "provider_priced": True}


def repriced_cost(prices: Mapping[str, int], channel: str, units: int) -> ColumnElement[Any]:
    """The cost after the units changed (a call's real minutes): the table's unless the provider priced it."""
    c = MESSAGE_COLUMNS
    return case((c.provider_priced.is_(True), c.cost_micros), else_=table_cost(prices, channel, units))
