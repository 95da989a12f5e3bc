"""The registrar's status webhook on the webhook receiver (``POST /registrar/webhook`` of ``hexavox web``).

Like the delivery-report webhook: the driver checks the signature and parses the body, the decisions are enqueued
for ``hexavox.internal.tendlc_updates`` and the database is never touched here. 202 when queued, 401 (E827) for a
bad signature, 400 for a malformed body, 503 when the broker is down (the registrar retries).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from providers.registrars.registry import get_registrar
from worker.catalogue import Code
from worker.errors import Refusal
from worker.queues import CALLBACKS
from worker.settings import Settings
from worker.task_names import TENDLC_UPDATES

__all__ = ["EnqueueUpdates", "accept_registrar_webhook", "registrar_routes"]

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 256 * 1024
EnqueueUpdates = Callable[[list[dict[str, Any]]], None]


def celery_enqueue(updates: list[dict[str, Any]]) -> None:
    from worker.celery_app import app

    app.send_task(TENDLC_UPDATES, args=[updates], queue=CALLBACKS, argsrepr=f"('{len(updates)} updates',)")


def accept_registrar_webhook(settings: Settings, headers: dict[str, str], body: bytes,
                             enqueue: EnqueueUpdates) -> tuple[int, dict[str, Any]]:
    """(status, answer) for one registrar webhook request."""
    try:
        updates = get_registrar(settings).parse_webhook(headers, body)
    except Refusal as refusal:
        status = 401 if refusal.code == Code.WEBHOOK_NOT_AUTHENTIC else 400
        log.warning("registrar webhook refused %s (%s)", status, refusal.code.value)
        return status, {"code": refusal.code.value, "name": refusal.code.name}
    rows = [{**dataclasses.asdict(u), "kind": u.kind.value, "ourId": u.our_id, "reasons": list(u.reasons),
             "eventId": u.event_id} for u in updates]
    for row in rows:
        row.pop("our_id")
        row.pop("event_id")
    if rows:
        try:
            enqueue(rows)
        except Exception as err:  # broker down: the registrar retries
            log.error("registrar webhook: could not enqueue %d update(s): %s", len(rows), type(err).__name__)
            return 503, {"detail": "temporarily unavailable"}
    return 202, {"accepted": len(rows)}


def registrar_routes(settings: Settings, enqueue: EnqueueUpdates | None = None) -> list[Route]:
    async def webhook(request: Request) -> JSONResponse:
        from worker.web import BodyTooLarge, read_body

        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        status, answer = await run_in_threadpool(accept_registrar_webhook, settings, dict(request.headers), body,
                                                 enqueue or celery_enqueue)
        return JSONResponse(answer, status_code=status)

    return [Route("/registrar/webhook", webhook, methods=["POST"])]
