"""Prometheus metrics from real processes: a prefork worker, beat, and the webhook receiver.

* The worker serves the samples of *every* pool process (multiprocess mode): tasks run in the children,
  so without it the counts read from the main process would be 0.
* Beat serves the service's state read at scrape time: messages by state, queue depths, balances, breakers.
* The webhook receiver counts requests by route with a bounded label set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from factories import Tenant, make_merchant, make_tenant, sms
from ops_support import free_port, start_process, stop_process, wait_for
from support import start_worker


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return _samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status().text)


@pytest.fixture
def tenant(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant, sms=50)
    return tenant


def test_a_prefork_worker_exports_intake_dispatch_and_refusal_metrics_of_every_pool_process(
        hexavox_env: dict[str, str], tenant: Tenant, tmp_path: Path) -> None:
    from worker.client import HexavoxClient

    # Given a worker with two pool processes serving metrics
    port = free_port()
    env = {**hexavox_env, "HEXAVOX_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
           "HEXAVOX_LOG_FORMAT": "json"}
    (tmp_path / "prom").mkdir()
    worker = start_worker(env, tmp_path / "worker.log", queues="otp,transactional,dispatch.otp,dispatch.transactional",
                          concurrency=2)
    try:
        # When four OTPs are accepted and one is refused for its number
        client = HexavoxClient(tenant.key_id, tenant.secret)
        ids = [client.send_sms(**{k: v for k, v in sms(tenant, type="OTP", to=f"+1813555{1230 + i}",
                                                       body=f"Code {i}").items() if k != "auth"})
               for i in range(4)]
        ids.append(client.send_sms(**{k: v for k, v in sms(tenant, type="OTP", to="+1813555").items()
                                      if k != "auth"}))
        answers = [client.result(request_id, timeout=60)["status"] for request_id in ids]
        client.close()
        assert answers == ["ACCEPTED"] * 4 + ["REFUSED"]

        # Then the worker's endpoint counts them all, whichever pool process ran each
        samples = wait_for("four dispatches in the metrics", lambda: s if _value(
            s := _scrape(port), "hexavox_dispatch_duration_seconds_count", queue="dispatch.otp",
            step="SENT") == 4 else None)
        sms_job = "hexavox.sms.send.v1"
        assert _value(samples, "hexavox_intake_duration_seconds_count", job=sms_job, status="ACCEPTED") == 4
        assert _value(samples, "hexavox_intake_duration_seconds_count", job=sms_job, status="REFUSED") == 1
        assert _value(samples, "hexavox_refusals_total", code="E406", job=sms_job) == 1
        # (each OTP was sent by its own intake task right after its commit: inline dispatch, no second task)
        assert _value(samples, "hexavox_tasks_total", task=sms_job, state="SUCCESS") == 5
        assert _value(samples, "hexavox_tasks_total", task="hexavox.internal.dispatch", state="SUCCESS") == 0
        assert len(list((tmp_path / "prom").glob("*.db"))) >= 2  # written by the pool processes
    finally:
        worker.stop()
    # And its log is JSON lines with the task context; the refusal is an INFO line without a traceback
    assert "+18135551230" not in worker.log()
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    refusals = [r for r in records if r["message"].startswith("request refused")]
    assert [(r["level"], r["message"], r["task_name"], r["request_id"], r["merchant"]) for r in refusals] == [
        ("INFO", "request refused in part: E406", sms_job, ids[-1], "gym-a")]
    assert "exc_info" not in refusals[0] and "Traceback" not in worker.log()


@pytest.fixture
def beat(hexavox_env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    import sys

    port = free_port()
    proc = start_process([sys.executable, "-m", "celery", "-A", "worker", "beat", "-l", "INFO",
                          "--schedule", str(tmp_path / "beat-schedule")],
                         {**hexavox_env, "HEXAVOX_METRICS_PORT": str(port)}, tmp_path / "beat.log")
    try:
        wait_for("beat's metrics endpoint", lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).is_success)
        yield port
    finally:
        stop_process(proc)


def test_beat_exports_message_states_queue_depths_balances_and_breakers(hexavox_env: dict[str, str], tenant: Tenant,
                                                                       beat: int) -> None:
    from worker.publish import publish_dispatch
    from worker.runner import run_send_job

    # Given two OTPs and a TXN accepted and queued for dispatch, with no worker running
    outcomes = [run_send_job("hexavox.sms.send.v1", sms(tenant, type=kind, to=to), request_id)
                for kind, to, request_id in (("OTP", "+18135551234", "r1"), ("OTP", "+18135551235", "r2"),
                                             ("TXN", "+18135551236", "r3"))]
    assert publish_dispatch(item for outcome in outcomes for item in outcome.to_dispatch) == 3

    # When Prometheus scrapes beat
    samples = _scrape(beat)

    # Then the state gauges describe them, and every part of the scrape worked
    from worker.telemetry.state import STATE_METRICS

    assert STATE_METRICS <= {name for name, _ in samples}
    assert _value(samples, "hexavox_messages", state="QUEUED", channel="SMS", provider="none", type="OTP") == 2
    assert _value(samples, "hexavox_messages", state="QUEUED", channel="SMS", provider="none", type="TXN") == 1
    assert _value(samples, "hexavox_queue_depth", queue="dispatch.otp") == 2
    assert _value(samples, "hexavox_queue_depth", queue="dispatch.transactional") == 1
    assert _value(samples, "hexavox_queue_depth", queue="bulk") == 0
    merchant = f"{tenant.tenant_id}/gym-a"
    assert _value(samples, "hexavox_merchant_units_used", merchant=merchant, channel="SMS") == 3
    assert _value(samples, "hexavox_merchant_units_remaining", merchant=merchant, channel="SMS") == 47
    assert _value(samples, "hexavox_breaker_open", provider="simulated", state="CLOSED") == 0
    assert _value(samples, "hexavox_reconcile_backlog", state="AMBIGUOUS") == 0
    assert ("hexavox_queued_oldest_seconds", frozenset()) in samples
    assert {part: _value(samples, "hexavox_state_errors", part=part) for part in ("database", "breakers", "queues")} \
        == {"database": 0, "breakers": 0, "queues": 0}


def test_the_webhook_receiver_serves_metrics_and_counts_requests_by_known_route(hexavox_env: dict[str, str]) -> None:
    from worker.settings import get_settings
    from worker.web import create_app

    app = create_app(get_settings(), enqueue=lambda name, events: None)
    series = (("/healthz", "2xx"), ("other", "4xx"), ("/webhooks", "4xx"))

    async def exercise() -> tuple[str, str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
            before = (await client.get("/metrics")).text
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/no/such/+18135551234")).status_code == 404
            assert (await client.post("/webhooks/nobody", content=b"{}")).status_code == 404
            return before, (await client.get("/metrics")).text

    before, after = (_samples(text) for text in asyncio.run(exercise()))
    for route, status in series:
        labels = {"app": "web", "route": route, "status": status}
        assert _value(after, "hexavox_http_requests_total", **labels) == _value(
            before, "hexavox_http_requests_total", **labels) + 1, route
    assert not any("+1813" in dict(labels).get("route", "") for _, labels in after)
