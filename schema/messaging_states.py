"""Statuses of 10DLC registration (brand, campaign, number assignment) and of SIP agents, as the registry has them.

Kept apart from :mod:`schema.states` (message states): these rows change by the registrar's decisions, never by a
send, and a send only reads them (worker/policy/tendlc.py).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AssignmentStatus", "BrandStatus", "NumberSource", "RegistrationStatus", "SipPresence", "SipTransport",
           "UseCase", "USE_CASE_COVERS"]


class BrandStatus(StrEnum):
    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    UNVERIFIED = "UNVERIFIED"  #: the registry could not verify the identity (reasons say why); may register again
    FAILED = "FAILED"  #: refused outright (reasons say why)


class RegistrationStatus(StrEnum):
    """A 10DLC campaign's status."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    REJECTED = "REJECTED"
    SUSPENDED = "SUSPENDED"


class AssignmentStatus(StrEnum):
    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    FAILED = "FAILED"


class NumberSource(StrEnum):
    BUY = "BUY"  #: bought through the registrar
    BYO = "BYO"  #: brought: a number the merchant already owns


class UseCase(StrEnum):
    TWO_FA = "2FA"
    ACCOUNT_NOTIFICATION = "ACCOUNT_NOTIFICATION"
    CUSTOMER_CARE = "CUSTOMER_CARE"
    DELIVERY_NOTIFICATION = "DELIVERY_NOTIFICATION"
    MARKETING = "MARKETING"
    MIXED = "MIXED"


#: Which SMS types (seed 000's OTP/TXN/MKT) a campaign of each use case may carry.
USE_CASE_COVERS: dict[UseCase, frozenset[str]] = {
    UseCase.TWO_FA: frozenset({"OTP"}),
    UseCase.ACCOUNT_NOTIFICATION: frozenset({"TXN"}),
    UseCase.CUSTOMER_CARE: frozenset({"TXN"}),
    UseCase.DELIVERY_NOTIFICATION: frozenset({"TXN"}),
    UseCase.MARKETING: frozenset({"MKT"}),
    UseCase.MIXED: frozenset({"OTP", "TXN", "MKT"}),
}


class SipPresence(StrEnum):
    AVAILABLE = "AVAILABLE"
    BUSY = "BUSY"
    OFFLINE = "OFFLINE"


class SipTransport(StrEnum):
    UDP = "UDP"
    TCP = "TCP"
    TLS = "TLS"
    WSS = "WSS"
