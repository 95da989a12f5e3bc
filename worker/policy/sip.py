"""Voice provisioning: a merchant's SIP credentials (one per agent), agents' presence, browser-calling tokens.

Secrets never rest anywhere readable: a credential keeps a random salt and the SHA-256 digest of its secret; the
secret itself is derived from the salt with a key of its own drawn from the service key, so only the HTTP answer to
the request that created it shows it (:func:`reveal_secret`; job answers are stored and shown by Flower, so they
never carry it). Browser tokens are HMAC-signed and short-lived (HEXAVOX_VOICE_TOKEN_TTL), minted per request and
never stored. Neither is ever logged.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schema.messaging_states import SipPresence, SipTransport
from schema.models import Merchant, SipCredential
from worker.catalogue import Code
from worker.contract import SipCredentialJob, SipPresenceJob, VoiceProvisioningJob
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.auth import Principal
from worker.policy.claims import Claim
from worker.policy.merchants import load_merchant
from worker.policy.transitions import utcnow
from worker.settings import Settings, get_settings

__all__ = ["AGENT_TYPES", "available_agent", "browser_token", "reveal_secret", "run_provisioning_job",
           "verify_browser_token", "verify_secret", "with_available_agent"]

_TOKEN_AUDIENCE = "hexavox-voice-browser"


def _key(settings: Settings, purpose: str) -> bytes:
    """A key of its own for each purpose, drawn from the service key (HEXAVOX_SERVICE_KEY)."""
    from worker.sealing import service_key

    return hmac.new(service_key(settings), f"hexavox/{purpose}".encode(), hashlib.sha256).digest()


def _secret_from(salt: str, settings: Settings) -> str:
    digest = hmac.new(_key(settings, "sip-secret"), salt.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _iso(at: dt.datetime | None) -> str | None:
    if at is None:
        return None
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.isoformat().replace("+00:00", "Z")


def _credential(session: Session, merchant: Merchant, username: str, *, lock: bool = False) -> SipCredential:
    query = select(SipCredential).where(SipCredential.merchant_id == merchant.id, SipCredential.username == username)
    row = session.scalars(query.with_for_update() if lock else query).first()
    if row is None:
        raise Refusal(Code.SIP_CREDENTIAL_NOT_FOUND, "no such SIP username for this merchant", field="username")
    return row


def agent_view(row: SipCredential) -> dict[str, Any]:
    return {"username": row.username, "domain": row.domain, "transport": row.transport, "presence": row.presence,
            "presenceAt": _iso(row.presence_at)}


def _create(session: Session, merchant: Merchant, job: SipCredentialJob) -> dict[str, Any]:
    settings = get_settings()
    salt = secrets.token_hex(16)
    row = SipCredential(merchant_id=merchant.id, username=job.username, domain=settings.sip_domain,
                        transport=SipTransport(job.transport).value, secret_salt=salt,
                        secret_sha256=_sha256(_secret_from(salt, settings)), presence=SipPresence.OFFLINE.value)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Refusal(Code.SIP_USERNAME_TAKEN, "this SIP username is taken", field="username") from None
    return {"merchantId": merchant.external_id, **agent_view(row),
            "secretShown": "once, in the HTTP answer that created the credential"}


def _presence(session: Session, merchant: Merchant, job: SipPresenceJob) -> dict[str, Any]:
    row = _credential(session, merchant, job.username, lock=True)
    row.presence, row.presence_at = SipPresence(job.state).value, utcnow()
    session.flush()
    return {"merchantId": merchant.external_id, **agent_view(row)}


def provisioning_view(session: Session, merchant: Merchant) -> dict[str, Any]:
    """Seed 003's V1VoiceProvisioningResponse: SIP domain and transports, agents and presence, browser calling."""
    settings = get_settings()
    agents = session.scalars(select(SipCredential).where(SipCredential.merchant_id == merchant.id)
                             .order_by(SipCredential.username)).all()
    return {"merchantId": merchant.external_id, "sipDomain": settings.sip_domain,
            "transports": [t.value for t in SipTransport], "agents": [agent_view(a) for a in agents],
            "browserCalling": {"tokenPath": "/api/v1/voice/provisioning/browser-token",
                               "ttlSeconds": settings.voice_token_ttl}}


def run_provisioning_job(session: Session, who: Principal, job: Any, _today: dt.date) -> dict[str, Any]:
    """The admin handler of every hexavox.provisioning.* job."""
    merchant = load_merchant(session, who.tenant_id, job.merchant_id, must_be_active=False)
    who.require_channel("VOICE")
    if isinstance(job, SipCredentialJob):
        return _create(session, merchant, job)
    if isinstance(job, SipPresenceJob):
        return _presence(session, merchant, job)
    assert isinstance(job, VoiceProvisioningJob)
    return provisioning_view(session, merchant)


def reveal_secret(session: Session, who: Principal, merchant_id: str, username: str) -> str:
    """The secret of a credential, for the HTTP answer to the request that created it (and nothing else)."""
    merchant = load_merchant(session, who.tenant_id, merchant_id, must_be_active=False)
    return _secret_from(_credential(session, merchant, username).secret_salt, get_settings())


def verify_secret(session: Session, username: str, secret: str) -> bool:
    """What a SIP registrar asks: is this the secret of ``username``? (Compared by digest, in constant time.)"""
    digest = session.scalar(select(SipCredential.secret_sha256).where(SipCredential.username == username))
    return digest is not None and hmac.compare_digest(digest, _sha256(secret))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def browser_token(session: Session, who: Principal, merchant_id: str, username: str,
                  now: float | None = None) -> dict[str, Any]:
    """A short-lived signed token a browser softphone logs in with as ``username``."""
    settings = get_settings()
    merchant = load_merchant(session, who.tenant_id, merchant_id)
    _credential(session, merchant, username)
    expires = int(now if now is not None else time.time()) + settings.voice_token_ttl
    claims = _b64(json.dumps({"aud": _TOKEN_AUDIENCE, "sub": f"{username}@{settings.sip_domain}",
                              "mid": merchant_id, "exp": expires, "jti": secrets.token_hex(8)},
                             separators=(",", ":")).encode())
    signature = _b64(hmac.new(_key(settings, "voice-token"), claims.encode(), hashlib.sha256).digest())
    return {"merchantId": merchant_id, "username": username, "token": f"{claims}.{signature}",
            "expiresAt": _iso(dt.datetime.fromtimestamp(expires, dt.UTC))}


def verify_browser_token(token: str, now: float | None = None) -> dict[str, Any] | None:
    """The token's claims when it is ours, untampered and unexpired; else None."""
    claims, _, signature = token.partition(".")
    expected = _b64(hmac.new(_key(get_settings(), "voice-token"), claims.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    if decoded.get("aud") != _TOKEN_AUDIENCE or int(decoded["exp"]) <= int(now if now is not None else time.time()):
        return None
    return decoded


#: Voice types a call may be connected to an agent for.
AGENT_TYPES = frozenset({"REMINDER", "TXN"})
def with_available_agent(claim: Claim, settings: Settings) -> Claim:
    """A voice call that asked for an agent, with the SIP address of one AVAILABLE now (``options["agentSip"]``),
    when the route's first provider can connect calls to agents (its ``rings_agents`` flag); else unchanged."""
    message = claim.message
    if not message.options.get("ringAgent") or message.message_type not in AGENT_TYPES or not claim.providers:
        return claim
    from providers.registry import get_provider

    if not getattr(get_provider(claim.providers[0], settings), "rings_agents", False):
        return claim
    with session_scope() as session:
        agent = available_agent(session, claim.merchant_id)
    if agent is None:
        return claim
    options = {**message.options, "agentSip": agent}
    return dataclasses.replace(claim, message=dataclasses.replace(message, options=options))


def available_agent(session: Session, merchant_id: int) -> str | None:
    """The SIP address of an AVAILABLE agent of the merchant (the one available longest), or None."""
    row = session.scalars(select(SipCredential).where(SipCredential.merchant_id == merchant_id,
                                                      SipCredential.presence == SipPresence.AVAILABLE.value)
                          .order_by(SipCredential.presence_at, SipCredential.id).limit(1)).first()
    return f"sip:{row.username}@{row.domain}" if row is not None else None
