"""10DLC registration tasks: beat's poll of the registrar, and the registrar webhook's decisions.

Thin: the logic is worker/policy/tendlc.py (the same functions the tests call directly).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from providers.registrars.base import Kind, Update
from providers.registrars.registry import get_registrar
from worker.celery_app import app
from worker.db import session_scope
from worker.policy.tendlc import apply_update, sync_registrations
from worker.sealing import internal_task
from worker.settings import get_settings
from worker.task_names import TENDLC_POLL, TENDLC_UPDATES


@internal_task(app, TENDLC_POLL)
def tendlc_poll() -> dict[str, Any]:
    """Submit new registrations, ask about PENDING ones and apply the decisions."""
    counts = sync_registrations(session_scope, get_registrar(get_settings()))
    return asdict(counts)


@internal_task(app, TENDLC_UPDATES)
def tendlc_updates(updates: list[dict[str, Any]]) -> int:
    """Apply the decisions a registrar webhook carried, each in its own transaction; how many changed a row."""
    changed = 0
    for raw in updates:
        with session_scope() as session:
            changed += apply_update(session, Update(Kind(raw["kind"]), str(raw["ourId"]), str(raw["status"]),
                                                    tuple(raw.get("reasons", ())), event_id=raw.get("eventId")))
    return changed
