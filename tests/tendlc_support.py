"""Test support for 10DLC: the registration jobs run as a worker runs them, and the registrar's poll."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from worker.db import session_scope
from worker.settings import reset_settings

from factories import Tenant

#: A US long code the merchant registers, and a US recipient.
SENDER = "+12015550123"
RECIPIENT = "+18135551234"
BRAND = {"legalName": "Gym A LLC", "taxId": "12-3456789", "vertical": "FITNESS",
         "address": {"street": "1 Main St", "city": "Tampa", "state": "FL", "postalCode": "33602"},
         "contact": {"name": "Ann Owner", "email": "owner@gym-a.example", "phone": "+18135550199"}}
CAMPAIGN = {"description": "Class reminders and codes", "sampleMessages": ["Your code is 123456"],
            "optIn": "Members opt in at sign-up", "optOut": "Reply STOP to opt out", "help": "Reply HELP for help"}


def job(task: str, tenant: Tenant, merchant_id: str = "gym-a", **fields: Any) -> dict[str, Any]:
    """The answer to one admin job (its view under ``result`` when accepted)."""
    from worker.runner import run_admin_job_by_name

    return run_admin_job_by_name(task, {"auth": tenant.auth, "merchantId": merchant_id, **fields}, str(uuid.uuid4()))


def view(task: str, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    answer = job(task, tenant, **fields)
    assert answer["status"] == "ACCEPTED", answer
    result: dict[str, Any] = answer["result"]
    return result


def poll() -> Any:
    """One run of the beat-driven registrar poll (the task's body)."""
    from providers.registrars.registry import get_registrar
    from worker.policy.tendlc import sync_registrations
    from worker.settings import get_settings

    return sync_registrations(session_scope, get_registrar(get_settings()))


def settle() -> None:
    """Two polls: the first submits what is new, the second reads the registrar's decisions."""
    poll()
    poll()


def registrar_decides(monkeypatch: pytest.MonkeyPatch, options: str) -> None:
    """Set the simulated registrar's decisions (HEXAVOX_REGISTRAR_OPTIONS) for what it is asked next."""
    monkeypatch.setenv("HEXAVOX_REGISTRAR_OPTIONS", options)
    reset_settings()


def verified_brand(tenant: Tenant, merchant_id: str = "gym-a") -> dict[str, Any]:
    view("hexavox.messaging.brand.register.v1", tenant, merchantId=merchant_id, **BRAND)
    settle()
    return view("hexavox.messaging.status.v1", tenant, merchantId=merchant_id)


def active_campaign(tenant: Tenant, use_case: str = "2FA") -> str:
    campaign = view("hexavox.messaging.campaign.create.v1", tenant, useCase=use_case, **CAMPAIGN)
    settle()
    return str(campaign["campaignId"])


def assigned_number(tenant: Tenant, use_case: str = "2FA", number: str = SENDER) -> str:
    """A brand, an ACTIVE campaign of ``use_case`` and ``number`` ASSIGNED to it (registrar defaults: all accept)."""
    verified_brand(tenant)
    campaign_id = active_campaign(tenant, use_case)
    view("hexavox.messaging.number.add.v1", tenant, number=number)
    view("hexavox.messaging.number.assign.v1", tenant, number=number, campaignId=campaign_id)
    settle()
    return campaign_id


def registered_unassigned_number(tenant: Tenant, number: str = SENDER) -> None:
    verified_brand(tenant)
    view("hexavox.messaging.number.add.v1", tenant, number=number)
