"""deliver() against a real HTTP(S) server on 127.0.0.1 (docs/reliability.md S1/S2).

The server is a ``ThreadingHTTPServer`` started per test on a free loopback port; it records every
request so tests can prove what was (and was not) received. Nothing here sends traffic anywhere
but 127.0.0.1: public-looking names go through stub resolvers that answer 127.0.0.1.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from worker.callbacks.deliver import MAX_ATTEMPTS, backoff_seconds, deliver, retry_window_seconds
from worker.callbacks.egress import Resolver
from worker.callbacks.signing import new_secret, signature_headers

HUGE_TOTAL = 64 * 1024 * 1024
DRIP_LENGTH = 100_000


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """What the test server saw, shared with its handler threads."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    huge_done: threading.Event = field(default_factory=threading.Event)
    huge_sent: int = 0
    port: int = 0
    sni: list[str | None] = field(default_factory=list)

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.received]


class RecordingServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the :class:`Recorder` its handlers write to."""

    daemon_threads = True

    def __init__(self, rec: Recorder) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.rec = rec
        rec.port = self.server_port


class Handler(BaseHTTPRequestHandler):
    """Routes by path: fixed replies, a slow one, a huge one and a trickling one."""

    @property
    def rec(self) -> Recorder:
        assert isinstance(self.server, RecordingServer)
        return self.server.rec

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with self.rec.lock:
                self.rec.received.append(Received(self.path, dict(self.headers.items()), body))
            self._route()
        except OSError:
            pass  # the client hung up on purpose (cap, deadline): not a test failure

    def _reply(self, status: int, body: bytes = b"", extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        fixed = {
            "/ok": (200, b"ok", {}),
            "/accepted": (202, b"", {}),
            "/redirect": (302, b"", {"Location": f"http://127.0.0.1:{self.rec.port}/target"}),
            "/target": (200, b"should never be reached", {}),
            "/fail": (500, b"boom", {}),
            "/bad-request": (400, b"nope", {}),
        }
        streaming = {"/slow": self._slow, "/huge": self._huge, "/drip": self._drip}
        path = self.path.split("?", 1)[0]
        if path in streaming:
            streaming[path]()
        else:
            self._reply(*fixed.get(path, (404, b"", {})))

    def _slow(self) -> None:
        self.rec.release.wait(10)
        self._reply(200, b"too late")

    def _huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(HUGE_TOTAL))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            while self.rec.huge_sent < HUGE_TOTAL:
                self.wfile.write(chunk)
                self.rec.huge_sent += len(chunk)
        finally:
            self.rec.huge_done.set()

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(DRIP_LENGTH))
        self.end_headers()
        for _ in range(DRIP_LENGTH):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.rec.release.wait(0.05):
                return



@dataclass
class Server:
    base: str
    port: int
    rec: Recorder


def _start(rec: Recorder, tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = RecordingServer(rec)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return httpd, thread


def _stop(rec: Recorder, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    rec.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    rec = Recorder()
    httpd, thread = _start(rec)
    port = httpd.server_port
    try:
        yield Server(f"http://127.0.0.1:{port}", port, rec)
    finally:
        _stop(rec, httpd, thread)


@dataclass
class TlsServer:
    port: int
    rec: Recorder
    client_context: ssl.SSLContext


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """HTTPS on 127.0.0.1 with a self-signed certificate for ``merchant.test`` only (no IP SAN)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=merchant.test",
         "-addext", "subjectAltName=DNS:merchant.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    rec = Recorder()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    def remember_sni(sock: object, name: str | None, ctx: object) -> None:
        rec.sni.append(name)

    server_ctx.sni_callback = remember_sni
    httpd, thread = _start(rec, server_ctx)
    try:
        yield TlsServer(httpd.server_port, rec, ssl.create_default_context(cafile=str(cert)))
    finally:
        _stop(rec, httpd, thread)


def _to_loopback(calls: list[str]) -> Resolver:
    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    return resolver


def _signed(body: bytes) -> tuple[str, dict[str, str]]:
    secret = new_secret()
    return secret, signature_headers([secret], "msg_it_1", int(time.time()), body)


BODY = json.dumps({"messageId": "m-42", "status": "DELIVERED", "to": "+447700900123"}).encode()


def test_200_is_delivered_with_exact_bytes_and_verifiable_signature(server: Server) -> None:
    secret, headers = _signed(BODY)
    result = deliver(f"{server.base}/ok", BODY, headers, allow_private=True, timeout=5)
    assert result.outcome == "delivered"
    assert result.status_code == 200
    assert result.response_bytes == 2 and not result.truncated
    [got] = server.rec.received
    assert got.body == BODY
    assert got.headers["Host"] == f"127.0.0.1:{server.port}"
    assert got.headers["Content-Type"] == "application/json"
    assert Webhook(secret).verify(got.body, got.headers) == json.loads(BODY)


def test_any_2xx_is_delivered(server: Server) -> None:
    _, headers = _signed(BODY)
    result = deliver(f"{server.base}/accepted", BODY, headers, allow_private=True, timeout=5)
    assert (result.outcome, result.status_code) == ("delivered", 202)


def test_redirect_is_a_retry_and_never_followed(server: Server) -> None:
    _, headers = _signed(BODY)
    result = deliver(f"{server.base}/redirect", BODY, headers, allow_private=True, timeout=5)
    assert result.outcome == "retry"
    assert result.status_code == 302
    assert "redirect" in result.error
    time.sleep(0.1)
    assert server.rec.paths() == ["/redirect"], "the redirect target must never be hit"


@pytest.mark.parametrize(("path", "status"), [("/fail", 500), ("/bad-request", 400), ("/missing", 404)])
def test_error_status_is_a_retry(server: Server, path: str, status: int) -> None:
    _, headers = _signed(BODY)
    result = deliver(f"{server.base}{path}", BODY, headers, allow_private=True, timeout=5)
    assert (result.outcome, result.status_code) == ("retry", status)
    assert result.error == f"HTTP {status}"


def test_slow_endpoint_is_a_retry_within_the_deadline(server: Server) -> None:
    _, headers = _signed(BODY)
    started = time.monotonic()
    result = deliver(f"{server.base}/slow", BODY, headers, allow_private=True, timeout=1.0)
    took = time.monotonic() - started
    assert result.outcome == "retry"
    assert result.status_code is None
    assert "timeout" in result.error or "deadline" in result.error
    assert took < 1.5, took
    assert server.rec.paths() == ["/slow"]


def test_trickling_body_is_cut_by_the_overall_deadline(server: Server) -> None:
    """A byte every 50 ms never trips a read timeout; only the overall deadline stops it."""
    _, headers = _signed(BODY)
    started = time.monotonic()
    result = deliver(f"{server.base}/drip", BODY, headers, allow_private=True, timeout=1.0)
    took = time.monotonic() - started
    assert took < 1.5, took
    # The status line said 200: the merchant has the report, so it counts as delivered (no duplicate).
    assert (result.outcome, result.status_code) == ("delivered", 200)
    assert result.error == "deadline exceeded"
    assert 0 < result.response_bytes < DRIP_LENGTH


def test_huge_response_is_cut_at_the_cap(server: Server) -> None:
    _, headers = _signed(BODY)
    started = time.monotonic()
    result = deliver(f"{server.base}/huge", BODY, headers, allow_private=True, timeout=5, max_response_bytes=1024)
    assert time.monotonic() - started < 3
    assert (result.outcome, result.status_code) == ("delivered", 200)
    assert result.truncated
    assert result.response_bytes == 1024
    assert server.rec.huge_done.wait(5), "server should see the client hang up"
    assert server.rec.huge_sent < HUGE_TOTAL


def test_default_cap_is_64_kib(server: Server) -> None:
    _, headers = _signed(BODY)
    result = deliver(f"{server.base}/huge", BODY, headers, allow_private=True, timeout=5)
    assert result.truncated and result.response_bytes == 65536


def test_loopback_is_refused_without_allow_private_and_nothing_is_sent(server: Server) -> None:
    _, headers = _signed(BODY)
    result = deliver(f"{server.base}/ok", BODY, headers, allow_private=False, timeout=5,
                     allowed_ports={server.port})
    assert result.outcome == "refused"
    assert result.status_code is None
    assert "loopback" in result.error
    time.sleep(0.1)
    assert server.rec.received == []


def test_name_resolving_to_loopback_is_refused_without_allow_private(server: Server) -> None:
    _, headers = _signed(BODY)
    calls: list[str] = []
    result = deliver(f"http://merchant.test:{server.port}/ok", BODY, headers, allow_private=False,
                     resolver=_to_loopback(calls), allowed_ports={server.port})
    assert result.outcome == "refused"
    assert calls == ["merchant.test"]
    assert server.rec.received == []


def test_connection_goes_to_the_pinned_ip_with_the_real_host_header(server: Server) -> None:
    _, headers = _signed(BODY)
    calls: list[str] = []
    result = deliver(f"http://merchant.test:{server.port}/ok?x=1", BODY, headers, allow_private=True,
                     resolver=_to_loopback(calls), timeout=5)
    assert result.outcome == "delivered"
    assert calls == ["merchant.test"], "resolved once, then connected to the pinned IP"
    [got] = server.rec.received
    assert got.path == "/ok?x=1"
    assert got.headers["Host"] == f"merchant.test:{server.port}"


def test_connection_refused_is_a_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, headers = _signed(BODY)
    result = deliver(f"http://127.0.0.1:{port}/ok", BODY, headers, allow_private=True, timeout=2)
    assert result.outcome == "retry"
    assert result.status_code is None
    assert "ConnectError" in result.error


def test_caller_cannot_override_host_or_framing(server: Server) -> None:
    for name in ("Host", "content-length", "Transfer-Encoding"):
        with pytest.raises(ValueError):
            deliver(f"{server.base}/ok", BODY, {name: "x"}, allow_private=True)
    with pytest.raises(ValueError):
        deliver(f"{server.base}/ok", BODY, {"X-Test": "a\r\nX-Evil: 1"}, allow_private=True)
    assert server.rec.received == []


def test_https_uses_sni_and_verifies_the_real_name_while_connecting_to_the_ip(tls_server: TlsServer) -> None:
    secret, headers = _signed(BODY)
    calls: list[str] = []
    result = deliver(f"https://merchant.test:{tls_server.port}/ok", BODY, headers, allow_private=True, timeout=5,
                     resolver=_to_loopback(calls), ssl_context=tls_server.client_context)
    assert result.outcome == "delivered", result.error
    assert tls_server.rec.sni == ["merchant.test"]
    [got] = tls_server.rec.received
    assert got.headers["Host"] == f"merchant.test:{tls_server.port}"
    Webhook(secret).verify(got.body, got.headers)


def test_https_certificate_for_another_name_is_a_retry(tls_server: TlsServer) -> None:
    _, headers = _signed(BODY)
    calls: list[str] = []
    result = deliver(f"https://other.test:{tls_server.port}/ok", BODY, headers, allow_private=True, timeout=5,
                     resolver=_to_loopback(calls), ssl_context=tls_server.client_context)
    assert result.outcome == "retry"
    assert result.status_code is None
    assert tls_server.rec.received == []


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 30):
        ceiling = min(6 * 3600, 5 * 2 ** (attempt - 1))
        samples = [backoff_seconds(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8, "full jitter reaches close to the ceiling"
        assert min(samples) < ceiling * 0.2, "and close to zero"
    assert backoff_seconds(10_000) <= 6 * 3600
    with pytest.raises(ValueError):
        backoff_seconds(0)


def test_retry_schedule_spans_about_a_day_to_two() -> None:
    mean, upper = retry_window_seconds()
    assert MAX_ATTEMPTS == 20
    assert 20 * 3600 < mean < 28 * 3600
    assert 44 * 3600 < upper < 50 * 3600
