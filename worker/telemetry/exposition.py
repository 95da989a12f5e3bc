"""Serving ``/metrics``: one registry per process that adds up every process's samples when multiprocess.

* A Celery worker (and beat) serves on ``HEXAVOX_METRICS_PORT`` from its main process
  (:func:`start_metrics_server`); prefork children write to ``PROMETHEUS_MULTIPROC_DIR`` and the main process
  reads them all, so a scrape sees the whole worker whatever the pool.
* An ASGI app (``hexavox web``, the HTTP API) mounts it with one line: ``mount_metrics(app, "api")``, which adds
  the ``/metrics`` route and per-route request counters.

Without ``PROMETHEUS_MULTIPROC_DIR`` the process's own default registry is served (one process: all there is).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

__all__ = ["mount_metrics", "serving_registry", "start_metrics_server", "MULTIPROC_ENV"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def serving_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """The registry a process serves: every process's samples (multiprocess) or its own, plus ``extra``."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    for collector in extra:
        registry.register(collector)
    return registry


def start_metrics_server(port: int, extra: Iterable[Collector] = (), addr: str = "0.0.0.0") -> CollectorRegistry:
    """Serve ``/metrics`` on ``port`` from a daemon thread of this process; returns the registry it serves."""
    from prometheus_client import start_http_server

    registry = serving_registry(extra)
    start_http_server(port, addr=addr, registry=registry)
    return registry


def mount_metrics(app: Any, app_name: str, path: str = "/metrics", registry: CollectorRegistry | None = None) -> None:
    """Add ``GET path`` and request metrics to a Starlette app: ``mount_metrics(app, "api")`` before it starts.

    Requests are counted by the first segment of the path when it is one of the app's own routes (else
    ``other``), so a scanner probing random URLs adds no series.
    """
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    served = registry if registry is not None else serving_registry()

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(served), media_type=CONTENT_TYPE_LATEST)

    app.router.routes.append(Route(path, metrics, methods=["GET"]))
    known = {_first_segment(getattr(route, "path", "")) for route in app.router.routes}
    app.add_middleware(_RequestMetrics, app_name=app_name, known=frozenset(known))


def _first_segment(path: str) -> str:
    return "/" + path.lstrip("/").split("/", 1)[0]


class _RequestMetrics:
    """Pure ASGI middleware: counts answers by route and status class and times them (no body is read)."""

    def __init__(self, app: ASGIApp, app_name: str, known: frozenset[str]) -> None:
        self.app = app
        self.app_name = app_name
        self.known = known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from worker.telemetry.metrics import HTTP_REQUESTS, HTTP_SECONDS, bounded

        route = bounded(_first_segment(str(scope.get("path", ""))), self.known)
        status = {"code": 500}
        started = time.perf_counter()

        async def record(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            HTTP_SECONDS.labels(self.app_name, route).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(self.app_name, route, f"{status['code'] // 100}xx").inc()
