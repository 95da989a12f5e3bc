"""Who is calling: the key from X-API-KEY / X-API-SECRET, checked against the database, its IP rules and its rate.

:func:`admit` runs before any work (in its own short transaction), so a request from the wrong address or over
the key's rate costs one indexed read and nothing is recorded. The write itself is then run with
:meth:`Caller.authenticator`, which checks the key again inside the job's own transaction: a key revoked in between
is refused there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.limits import require_address, require_rate
from worker.catalogue import Code
from worker.errors import AuthenticationError
from worker.policy.auth import Authenticator, Principal, by_secret
from worker.settings import Settings

__all__ = ["Caller", "admit"]

#: The longest key id and secret the API reads (as the contract's Credentials).
_MAX_KEY_ID, _MAX_SECRET = 64, 256


@dataclass(frozen=True)
class Caller:
    """The credentials and address of one HTTP request (the secret never leaves this object into a log)."""

    key_id: str
    secret: str
    client_ip: str | None

    def __repr__(self) -> str:
        return f"Caller(key_id={self.key_id!r}, client_ip={self.client_ip!r})"

    @classmethod
    def from_headers(cls, key_id: str | None, secret: str | None, client_ip: str | None) -> Caller:
        """The caller, or E801 (401) when a header is missing or longer than any key we issue."""
        if not key_id or not secret or len(key_id) > _MAX_KEY_ID or len(secret) > _MAX_SECRET or not (
                key_id.isprintable() and secret.isprintable()):
            raise AuthenticationError(Code.AUTHENTICATION_FAILED, "send X-API-KEY and X-API-SECRET headers")
        return cls(key_id, secret, client_ip)

    def authenticator(self) -> Authenticator:
        """The runner's check of this caller, in the job's transaction: key, secret, and address again."""
        check = by_secret(self.key_id, self.secret)

        def resolve(session: Session) -> Principal:
            who = check(session)
            require_address(who, self.client_ip)
            return who

        return resolve


def admit(session: Session, caller: Caller, settings: Settings) -> Principal:
    """The caller's principal after the key, its IP allowlist (E840) and its request rate (E843) allow the request."""
    who = by_secret(caller.key_id, caller.secret)(session)
    require_address(who, caller.client_ip)
    require_rate(who, settings)
    return who
