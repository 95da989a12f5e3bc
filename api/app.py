"""The ASGI app of ``hexavox api``: routes built from :data:`api.endpoints.OPERATIONS`, served under uvicorn.

Each request gets a new request id (the X-Request-Id header, and the id its job is recorded under). The event loop
only reads headers and the bounded body; everything that touches the database or Redis runs in the thread pool.
The seams (``send``, ``admin``, ``publish``) default to the runner and :func:`worker.publish.publish_dispatch`.
Besides ``/api/v1`` it serves ``/healthz`` (liveness) and ``/metrics`` (Prometheus, for the scraper only).

Logs name the operation, status, code, key id and request id only: never the secret, a body, a query string or a
contact (uvicorn's access log, which prints query strings, is off).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import uvicorn
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from api import provisioning, reads
from api.access import Caller, admit
from api.answers import admin_answer, send_answer
from api.endpoints import OPERATIONS, PREFIX, Operation
from api.openapi import openapi_document
from api.params import read_params
from api.payloads import read_json, send_payload, with_idempotency_key
from api.status import error_body, error_response
from worker.catalogue import Code
from worker.db import session_scope
from worker.dispatch_item import DispatchItem
from worker.errors import Refusal
from worker.policy.auth import Authenticator, Principal
from worker.policy.intake import IntakeOutcome
from worker.settings import Settings, get_settings
from worker.telemetry.exposition import mount_metrics

__all__ = ["Admin", "Publish", "Send", "create_app", "serve", "uvicorn_config"]

log = logging.getLogger(__name__)

#: The runner's entry points and the dispatch publisher, as the app calls them (tests may pass their own).
Send = Callable[[str, Any, str, Authenticator], IntakeOutcome]
Admin = Callable[[str, Any, str, Authenticator], dict[str, Any]]
Publish = Callable[[Iterable[DispatchItem]], int]

_KEY_ID = re.compile(r"hxk_[0-9a-f]{16}")
_SEND_JOBS = {"hexavox.sms.send.v1", "hexavox.voice.send.v1", "hexavox.email.send.v1"}
_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>HexaVox API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "OPENAPI_URL", dom_id: "#swagger-ui"});</script>
</body></html>
""".replace("OPENAPI_URL", PREFIX + "/openapi.json")


def _default_send(task: str, payload: Any, request_id: str, who: Authenticator) -> IntakeOutcome:
    from worker.runner import run_send_job

    return run_send_job(task, payload, request_id, who)


def _default_admin(task: str, payload: Any, request_id: str, who: Authenticator) -> dict[str, Any]:
    from worker.runner import run_admin_job_by_name

    return run_admin_job_by_name(task, payload, request_id, who)


def _default_publish(items: Iterable[DispatchItem]) -> int:
    from worker.publish import publish_dispatch

    return publish_dispatch(items)


class _Api:
    def __init__(self, settings: Settings, send: Send, admin: Admin, publish: Publish) -> None:
        self.settings, self.send, self.admin, self.publish = settings, send, admin, publish

    def endpoint(self, op: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            request_id, started = str(uuid.uuid4()), time.perf_counter()
            try:
                response = await self._answer(op, request, request_id)
            except Refusal as refusal:
                response = error_response(refusal, request_id)
            except Exception:  # a bug, never the caller's input: E103, and the caller may send it again
                log.exception("%s %s failed (request %s)", op.method, op.path, request_id)
                response = error_response(Refusal(Code.INTERNAL_ERROR, "send it again"), request_id)
            response.headers["X-Request-Id"] = request_id
            log.info("%s %s%s -> %d in %.1f ms (key %s, request %s)", op.method, PREFIX, op.path,
                     response.status_code, (time.perf_counter() - started) * 1000,
                     _key_for_log(request.headers.get("x-api-key")), request_id)
            return response
        return handle

    async def _answer(self, op: Operation, request: Request, request_id: str) -> Response:
        client = request.client.host if request.client else None
        caller = Caller.from_headers(request.headers.get("x-api-key"), request.headers.get("x-api-secret"), client)
        params = read_params(op, request.query_params, request.path_params)
        body = await read_json(request, self.settings.api_max_body_bytes) if op.request else None
        return await run_in_threadpool(self._run, op, caller, params, body, request.headers.get("idempotency-key"),
                                       request_id)

    def _run(self, op: Operation, caller: Caller, params: dict[str, Any], body: dict[str, Any] | None,
             idempotency_key: str | None, request_id: str) -> Response:
        """Blocking part: admit the caller, then read, send or run the admin job."""
        with session_scope() as session:
            who = admit(session, caller, self.settings)
            if op.job is None:
                return JSONResponse(_READS[op.operation_id](session, who, params), status_code=op.status)
        if op.job in _SEND_JOBS:
            return self._send(op, op.job, caller, body or {}, idempotency_key, request_id)
        if body is not None:  # a path's merchantId (/merchants/{merchantId}/messaging/*) wins over the body's
            body = {**body, **{p.name: params[p.name] for p in op.params if p.where == "path"}}
        payload = with_idempotency_key(body, idempotency_key) if body is not None else {
            name: value for name, value in params.items() if value is not None}
        return self._admin(op, op.job, caller, who, payload, request_id)

    def _send(self, op: Operation, job: str, caller: Caller, body: dict[str, Any], idempotency_key: str | None,
              request_id: str) -> Response:
        renames = {"message": "body"} if job == "hexavox.sms.send.v1" else None
        payload = send_payload(body, idempotency_key, self.settings.api_max_recipients, renames=renames)
        outcome = self.send(job, payload, request_id, caller.authenticator())
        if outcome.to_dispatch:  # after the commit; the outbox relay covers a publish that fails
            self.publish(outcome.to_dispatch)
        response = send_answer(outcome.result, request_id, simple=op.operation_id == "sendEmailSimple")
        return _replayed(response, outcome.result, request_id)

    def _admin(self, op: Operation, job: str, caller: Caller, who: Principal, payload: dict[str, Any],
               request_id: str) -> Response:
        result = self.admin(job, payload, request_id, caller.authenticator())
        answer = admin_answer(result, request_id)
        if isinstance(answer, Response):
            return _replayed(answer, result, request_id)
        if op.operation_id == "listAlerts":
            return JSONResponse(answer.get("alerts", []), status_code=op.status)
        if op.operation_id == "createSipCredential":  # the secret, to this request only (never stored)
            answer = provisioning.with_secret_once(who, answer, result, request_id)
        if op.operation_id == "upsertConsent":  # seed 003's ConsentView: the contact, and when it changed
            with session_scope() as session:
                answer = reads.consent_view(session, who, answer, payload.get("contact"))
        return _replayed(JSONResponse(answer, status_code=op.status), result, request_id)


def _replayed(response: Response, result: dict[str, Any], request_id: str) -> Response:
    """Mark an answer given before (an Idempotency-Key retry): it carries the first request's id, not this one."""
    if result.get("requestId") not in (None, request_id):
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _key_for_log(key_id: str | None) -> str:
    """The key id when it has the shape of one we issue; anything else (a secret pasted there?) is not logged."""
    return key_id if key_id is not None and _KEY_ID.fullmatch(key_id) else "-"


#: The reads without a queue job, by operation id (see :mod:`api.reads`).
_READS: dict[str, Callable[[Session, Principal, dict[str, Any]], Any]] = {
    "listMerchants": lambda session, who, p: reads.merchant_rows(session, who, p["limit"], p["offset"]),
    "getMerchant": lambda session, who, p: reads.one_merchant(session, who, p["merchantId"]),
    "listConsents": lambda session, who, p: reads.consent_rows(session, who, p.get("merchantId"), p.get("channel"),
                                                               p["limit"], p["offset"]),
    "getMessage": lambda session, who, p: reads.message_view(session, who, p["messageId"]),
    "getVoiceBrowserToken": provisioning.browser_token_read,
}


async def _openapi(_request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())


async def _docs(_request: Request) -> HTMLResponse:
    return HTMLResponse(_DOCS_PAGE)


async def _healthz(_request: Request) -> JSONResponse:
    """Liveness only: it answers without the database."""
    return JSONResponse({"ok": True})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404) and methods (405) answered as JSON with a catalogue code, like every refusal."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    request_id = str(uuid.uuid4())
    detail = "no such endpoint" if status == 404 else f"method {request.method} not allowed here"
    body = error_body({"code": Code.UNSUPPORTED_JOB.value, "name": Code.UNSUPPORTED_JOB.name, "detail": detail},
                      request_id)
    return JSONResponse(body, status_code=status, headers={**headers, "X-Request-Id": request_id})


def create_app(settings: Settings, *, send: Send | None = None, admin: Admin | None = None,
               publish: Publish | None = None) -> Starlette:
    """The API for ``settings``; the seams default to the runner and the Celery dispatch publisher."""
    api = _Api(settings, send or _default_send, admin or _default_admin, publish or _default_publish)
    routes = [Route(PREFIX + op.path, api.endpoint(op), methods=[op.method], name=op.operation_id)
              for op in OPERATIONS]
    routes += [Route(PREFIX + "/openapi.json", _openapi, methods=["GET"]),
               Route(PREFIX + "/docs", _docs, methods=["GET"]),
               Route("/healthz", _healthz, methods=["GET"])]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    mount_metrics(app, "api")  # GET /metrics for the scraper (keep it off the public proxy) and request counters
    return app


def uvicorn_config(app: Starlette, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """How ``hexavox api`` runs under uvicorn: no access log (it prints query strings), our logging set-up kept,
    and X-Forwarded-For believed only from HEXAVOX_API_TRUSTED_PROXIES (TLS ends at that proxy)."""
    trusted = settings.api_trusted_proxies.strip()
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, server_header=False,
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted or "127.0.0.1",
                          timeout_graceful_shutdown=20)


def serve(host: str = "127.0.0.1", port: int = 8000) -> int:
    """Run the API under uvicorn until stopped."""
    from worker.observability import configure_logging, init_sentry

    settings = get_settings()
    configure_logging()
    init_sentry(settings)
    uvicorn.Server(uvicorn_config(create_app(settings), settings, host, port)).run()
    return 0
