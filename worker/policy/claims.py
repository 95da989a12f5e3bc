"""A message dispatch has claimed (DISPATCHING): what its send and its record need.

Its own module so the checks dispatch runs on a claim just before the provider call (the 10DLC re-check, ringing an
available agent) can take it without importing dispatch itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import OutboundMessage

__all__ = ["Claim"]


@dataclass(frozen=True)
class Claim:
    message: OutboundMessage
    #: Provider names to try, in order (the merchant's route for the channel and type).
    providers: list[str]
    merchant_id: int
    #: Units reserved for the message at intake.
    units: int
