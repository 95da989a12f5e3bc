"""One exception hierarchy for the whole service.

Subclasses are named for what the caller must do next: a :class:`Refusal` is final and
carries a catalogue code; a :class:`ConfigurationError` stops the process at start-up.
Provider outcomes are not exceptions: a driver answers with a ``SendOutcome`` (providers/base.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.catalogue import Code

__all__ = [
    "HexavoxError",
    "ConfigurationError",
    "InvalidTransition",
    "Refusal",
    "ValidationError",
    "AuthenticationError",
]


class HexavoxError(Exception):
    """Root of every error this service raises on purpose."""


class ConfigurationError(HexavoxError):
    """A setting is missing or unsafe; raised at start-up."""


class InvalidTransition(HexavoxError):
    """A bug: code asked for a message move the state machine does not have, or a column a move may not set
    (:mod:`worker.policy.transitions`). Raised before anything is written."""


class Refusal(HexavoxError):
    """A job or message is refused with a catalogue code. Final: sending it again gives the same answer."""

    def __init__(self, code: Code, detail: str = "", *, field: str | None = None) -> None:
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code.value}{where}: {self.detail or self.code.name}"

    def as_dict(self) -> dict[str, str]:
        """The refusal as it is stored and returned to the sender."""
        out = {"code": self.code.value, "name": self.code.name, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        return out


class ValidationError(Refusal, ValueError):
    """Input does not meet the contract (format, length, value)."""


class AuthenticationError(Refusal):
    """The job's credentials are unknown, wrong, or not allowed to do this."""

