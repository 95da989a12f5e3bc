"""The delivery-report receiver: a small ASGI app for provider webhooks, run as its own process (`hexavox web`).

It does the least that must happen before answering: find the configured provider, let its driver check the
signature (delivery id, timestamp within HEXAVOX_WEBHOOK_TOLERANCE, body) and parse the body, give events without
an id of their own the signed delivery id (so a replay is recognised when applied), and enqueue the events for
``hexavox.internal.apply_reports``. Providers time out
and retry slow webhooks, so the database is never touched here; a 202 means "queued", and the task applies the
events idempotently (worker/policy/delivery_reports.py). When the broker is down the answer is 503, so the
provider retries instead of us dropping the report.

Answers: 202 ``{"accepted": n}``; 401 for a bad, missing or stale signature (E827) and 400 for a malformed body,
both with the catalogue code; 404 for a provider that is not configured; 413 above :data:`MAX_BODY_BYTES`. Bodies
carry phone numbers and reply texts, so they and the drivers' error details are never logged or echoed back.

``POST /payments/webhook`` is the payment side's signed confirmation of a billing upgrade (worker/payments.py).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from providers.base import DeliveryEvent
from providers.http_common import webhook_id_of
from providers.registry import get_provider
from worker.catalogue import Code
from worker.errors import AuthenticationError, Refusal
from worker.payments import MAX_PAYMENT_BODY_BYTES, handle_payment_webhook
from worker.policy.delivery_reports import events_to_json
from worker.queues import CALLBACKS
from worker.registrar_webhook import registrar_routes
from worker.settings import Settings, get_settings
from worker.task_names import APPLY_REPORTS

__all__ = ["APPLY_TASK", "MAX_BODY_BYTES", "BodyTooLarge", "Enqueue", "create_app", "read_body", "serve"]

log = logging.getLogger(__name__)

APPLY_TASK = APPLY_REPORTS
#: Larger bodies are refused with 413: a provider batch of reports is a few KB; this bounds memory per request.
MAX_BODY_BYTES = 256 * 1024

#: Hands (provider name, events as JSON) to the worker; tests may pass their own.
Enqueue = Callable[[str, list[dict[str, Any]]], None]


class BodyTooLarge(Exception):
    """The request body is over the cap (declared or streamed)."""


def celery_enqueue(provider_name: str, events_json: list[dict[str, Any]]) -> None:
    """Publish to the callbacks queue by task name, so this process never imports the task modules."""
    from worker.celery_app import app

    app.send_task(APPLY_TASK, args=[provider_name, events_json], queue=CALLBACKS,
                  argsrepr=f"({provider_name!r}, '{len(events_json)} events')", kwargsrepr="{}")


def create_app(settings: Settings, *, enqueue: Enqueue | None = None) -> Starlette:
    """The receiver for ``settings``' providers; ``enqueue`` defaults to publishing on the Celery broker."""
    from worker.telemetry.exposition import mount_metrics

    receiver = _Receiver(settings, enqueue or celery_enqueue)
    app = Starlette(routes=[
        Route("/webhooks/{provider}", receiver.webhook, methods=["POST"]),
        Route("/payments/webhook", receiver.payment, methods=["POST"]),
        *registrar_routes(settings),
        Route("/healthz", _healthz, methods=["GET"]),
    ])
    mount_metrics(app, "web")  # GET /metrics and request counters by route
    return app


async def _healthz(_request: Request) -> JSONResponse:
    """Liveness only: the receiver needs neither the database nor the broker to be up to answer."""
    return JSONResponse({"ok": True})


class _Receiver:
    def __init__(self, settings: Settings, enqueue: Enqueue) -> None:
        self.settings = settings
        self.enqueue = enqueue

    async def webhook(self, request: Request) -> JSONResponse:
        name = request.path_params["provider"]
        if name not in self.settings.providers:
            return JSONResponse({"detail": "unknown provider"}, status_code=404)
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            log.warning("webhook %s: body over %d bytes refused", name, MAX_BODY_BYTES)
            return JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await run_in_threadpool(self._accept, name, dict(request.headers), body)

    async def payment(self, request: Request) -> JSONResponse:
        """The payment side's signed confirmation (worker/payments.py)."""
        try:
            body = await read_body(request, MAX_PAYMENT_BODY_BYTES)
        except BodyTooLarge:
            return JSONResponse({"detail": f"body larger than {MAX_PAYMENT_BODY_BYTES} bytes"}, status_code=413)
        status, answer = await run_in_threadpool(_payment_or_503, self.settings, dict(request.headers), body)
        return JSONResponse(answer, status_code=status)

    def _accept(self, name: str, headers: dict[str, str], body: bytes) -> JSONResponse:
        """Parse and enqueue (blocking calls, run off the event loop)."""
        try:
            events = _parse(name, headers, body, self.settings)
        except Refusal as refusal:
            status = 401 if _is_auth_failure(refusal) else 400
            log.warning("webhook %s: refused %s (%s)", name, status, refusal.code.value)
            return JSONResponse({"code": refusal.code.value, "name": refusal.code.name}, status_code=status)
        events = _with_ids(events, webhook_id_of(headers))
        if events:
            try:
                self.enqueue(name, events_to_json(events))
            except Exception as err:  # broker down: the provider must retry, we cannot keep the report
                log.error("webhook %s: could not enqueue %d event(s): %s", name, len(events), type(err).__name__)
                return JSONResponse({"detail": "temporarily unavailable"}, status_code=503)
        log.info("webhook %s: %d event(s) enqueued", name, len(events))
        return JSONResponse({"accepted": len(events)}, status_code=202)


def _parse(name: str, headers: dict[str, str], body: bytes, settings: Settings) -> list[DeliveryEvent]:
    """The driver's events; a driver tripping over a malformed body in an unplanned way is a 400 too (the same
    body will never parse, so a 500 would only make the provider retry it forever)."""
    provider = get_provider(name, settings)
    try:
        return provider.parse_callback(headers, body)
    except Refusal:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise Refusal(Code.INVALID_INPUT, type(err).__name__) from err


def _payment_or_503(settings: Settings, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """A database that is down is a 503, so the payment side retries instead of dropping the confirmation."""
    try:
        return handle_payment_webhook(settings, headers, body)
    except Exception as err:
        log.error("payment webhook: could not apply: %s", type(err).__name__)
        return 503, {"detail": "temporarily unavailable"}


def _with_ids(events: list[DeliveryEvent], delivery_id: str | None) -> list[DeliveryEvent]:
    """Events lacking an id of their own are named after the (signed) delivery and their place in it."""
    if not delivery_id:
        return events
    return [e if e.event_id else dataclasses.replace(e, event_id=f"{delivery_id}:{i}") for i, e in enumerate(events)]


def _is_auth_failure(refusal: Refusal) -> bool:
    return isinstance(refusal, AuthenticationError) or refusal.code in (Code.AUTHENTICATION_FAILED,
                                                                        Code.WEBHOOK_NOT_AUTHENTIC)


async def read_body(request: Request, cap: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``cap`` (declared length, else while streaming)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def serve(host: str = "127.0.0.1", port: int = 8080) -> int:
    """Run the receiver under uvicorn until stopped; our logging set-up (PII filter) is kept."""
    import uvicorn

    from worker.observability import configure_logging, init_sentry

    settings = get_settings()
    configure_logging()
    init_sentry(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, server_header=False,
                proxy_headers=False, timeout_graceful_shutdown=20)
    return 0
