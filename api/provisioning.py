"""The HTTP door's part of voice provisioning: the SIP secret shown once, and browser-calling tokens.

Both are secrets the queue door never carries: a job's answer is stored (``requests.result``, the result backend)
and shown by Flower, so the secret is added to the HTTP answer of the request that created the credential only
(an Idempotency-Key retry is answered without it), and tokens are minted by a read with no job at all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from worker.db import session_scope
from worker.policy.auth import Principal
from worker.policy.sip import browser_token, reveal_secret

__all__ = ["TOKEN_JOB", "browser_token_read", "with_secret_once"]

#: A key that may read voice provisioning may mint browser tokens.
TOKEN_JOB = "hexavox.provisioning.get.v1"


def with_secret_once(who: Principal, answer: dict[str, Any], result: dict[str, Any],
                     request_id: str) -> dict[str, Any]:
    """The created credential's answer with its secret, when this very request created it."""
    if result.get("requestId") != request_id:
        return answer
    with session_scope() as session:
        secret = reveal_secret(session, who, str(answer["merchantId"]), str(answer["username"]))
    return {**answer, "secret": secret}


def browser_token_read(session: Session, who: Principal, params: dict[str, Any]) -> dict[str, Any]:
    """GET /voice/provisioning/browser-token: the key's rules as for reading provisioning, then a fresh token."""
    who.require(TOKEN_JOB, "VOICE")
    who.require_merchant(params["merchantId"])
    return browser_token(session, who, params["merchantId"], params["username"])
