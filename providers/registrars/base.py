"""What a 10DLC registrar driver does, as a small protocol like the message providers' (providers/base.py).

Registration is asynchronous at the registry: a submission is answered with a reference and PENDING, and the
decision comes later, by webhook or when asked. Every call is keyed by our own id, so a submission whose answer was
lost is found again by :meth:`Registrar.lookup` before anything is submitted twice (reconcile-first, as for
messages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = ["Decision", "Kind", "Registrar", "Submission", "Update"]


class Kind(StrEnum):
    BRAND = "BRAND"
    CAMPAIGN = "CAMPAIGN"
    ASSIGNMENT = "ASSIGNMENT"


@dataclass(frozen=True)
class Submission:
    """One thing to register: its kind, our id for it (the idempotency key) and the fields the registry reads."""

    kind: Kind
    our_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The registry's answer: a status of the kind's lifecycle (PENDING until decided), and reasons for a refusal.

    ``status`` None means the registrar has never heard of ``our_id`` (a lost submission: submit it).
    """

    status: str | None
    registrar_ref: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Update:
    """A decision pushed by the registrar's webhook, for one of our ids."""

    kind: Kind
    our_id: str
    status: str
    reasons: tuple[str, ...] = ()
    #: The signed request it came in and its place there: a replay of that request (inside the signature's time
    #: window) carries the same id and changes nothing, so an old decision cannot undo a newer one.
    event_id: str | None = None


@runtime_checkable
class Registrar(Protocol):
    name: str

    def submit(self, submission: Submission, now: dt.datetime) -> Decision:
        """Register (idempotent by ``our_id``). Raises ``OSError`` when the registry could not be reached."""
        ...

    def lookup(self, kind: Kind, our_id: str, submitted_at: dt.datetime | None, now: dt.datetime) -> Decision:
        """What the registry decided so far about one of our ids."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Update]:
        """The decisions of one webhook request. Raises ``ValidationError`` (E827) when it is not authentic."""
        ...
