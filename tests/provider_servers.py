"""Real local servers that speak the providers' protocols, for driver tests.

``FakeApi`` is one HTTP server (stdlib ``ThreadingHTTPServer``) answering the three HTTP APIs under their own path
prefix: ``/hexa`` (seed 000 style), ``/panel`` (seed 004 style) and ``/voice``. ``FakeSmtp`` is an aiosmtpd
``Controller``, optionally with STARTTLS (a self-signed certificate made at run time with the ``openssl`` command)
and AUTH. Both record every request they receive and can be scripted per recipient: accept, reject with a code,
answer with an HTTP error, hang past the client's timeout after reading the request, or drop the connection. The
panel also checks the seed-004 fields the driver takes from its options (route, flow id, and the DLT entity and
template ids for Indian numbers) and refuses with the panel's codes, so a field the driver forgets shows.

Everything binds to and talks to 127.0.0.1 only. Tests wrap the context managers in their own fixtures
(``with running_fake_api() as api: yield api``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
API_KEY = "test-api-key-not-secret"
#: How long a "hang" holds the request at most; teardown releases it at once.
HANG_SECONDS = 5.0


def free_port() -> int:
    """A port nothing listens on (bound, then released): also what "connection refused" tests point at."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- scripting ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """What the fake does with a request for one recipient."""

    action: str = "accept"  #: accept | reject | http_error | hang | close
    code: str = ""  #: the provider code of a rejection
    http_status: int | None = None  #: None: the API style's usual status for the action


def accept() -> Script:
    return Script("accept")


def reject(code: str, http_status: int | None = None) -> Script:
    return Script("reject", code=code, http_status=http_status)


def http_error(status: int = 500) -> Script:
    return Script("http_error", http_status=status)


def hang() -> Script:
    """Read the whole request, then answer nothing until the client has given up."""
    return Script("hang")


def close() -> Script:
    """Read the whole request, then close the connection without an answer."""
    return Script("close")


# -- the HTTP APIs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stored:
    """A message or call the fake accepted, for status lookups."""

    provider_ref: str
    client_ref: str
    recipient: str
    status: str
    duration: int | None = None


@dataclass
class FakeApi:
    """State shared by the handler threads: scripts, recorded requests, accepted messages."""

    base_url: str = ""
    scripts: dict[str, Script] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    stored: dict[str, Stored] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    #: How a many-numbers (seed 000 JSON) request is answered: "nodes" (a result per sms node), "bare" (E100 and
    #: nothing per number), or a seed-000 code refusing the whole request.
    bulk_answer: str = "nodes"

    def url(self, api: str) -> str:
        """Base URL of one API style: "hexa", "panel" or "voice"."""
        return f"{self.base_url}/{api}"

    def script(self, recipient: str, script: Script) -> None:
        self.scripts[recipient.lstrip("+")] = script

    def sends_to(self, recipient: str) -> list[Recorded]:
        """Send requests (POSTs) that named ``recipient``, alone or among many, whatever their fate."""
        wanted = recipient.lstrip("+")
        return [r for r in self.requests if r.method == "POST" and wanted in _recipients_of(r)]

    def set_status(self, provider_ref: str, status: str, duration: int | None = None) -> None:
        self.stored[provider_ref].status = status
        self.stored[provider_ref].duration = duration

    def find(self, provider_ref: str | None = None, client_ref: str | None = None) -> Stored | None:
        if provider_ref:
            return self.stored.get(provider_ref)
        return next((s for s in self.stored.values() if client_ref and s.client_ref == client_ref), None)

    def new_ref(self, prefix: str) -> str:
        with self.lock:
            return f"{prefix}-{next(self.ids):06d}"


def _is_json(request: Recorded) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")


def _recipients_of(request: Recorded) -> list[str]:
    """The numbers a send request names: one, or one per sms node of seed 000's JSON (many-numbers) form."""
    if request.path.startswith("/hexa/") and not _is_json(request):
        return [request.form().get("to", "").lstrip("+")]
    payload = request.json()
    if request.path.startswith("/hexa/"):
        nodes = payload.get("sms") if isinstance(payload, dict) else None
        return [str(node.get("to", "")).lstrip("+") for node in nodes or [] if isinstance(node, dict)]
    return [str(payload.get("mobiles") or payload.get("to") or "").lstrip("+")]


def _script_for(api: FakeApi, request: Recorded) -> Script:
    """A single send's script; for many numbers, the first script that answers for the whole request (hang, close,
    HTTP error), else accept (rejections of single numbers are answered per node)."""
    scripts = [api.scripts.get(number, accept()) for number in _recipients_of(request)]
    whole = [script for script in scripts if script.action in {"hang", "close", "http_error"}]
    if len(scripts) == 1 or whole:
        return (whole or scripts)[0]
    return accept()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""

    def _record(self) -> Recorded:
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        recorded = Recorded(self.command, split.path, dict(parse_qsl(split.query)),
                            {k.lower(): v for k, v in self.headers.items()}, body)
        with self.server.api.lock:
            self.server.api.requests.append(recorded)
        return recorded

    def _answer(self, status: int, payload: Any) -> None:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _silent(self, script: Script) -> None:
        """Hang or drop: the request was read, no answer goes back."""
        if script.action == "hang":
            self.server.api.release.wait(HANG_SECONDS)
        self.close_connection = True

    def do_POST(self) -> None:
        request = self._record()
        api = self.server.api
        routes = {"/hexa/messages": _hexa_send, "/panel/api/sendsms": _panel_send, "/voice/calls": _voice_send}
        route = routes.get(request.path)
        if route is None:
            return self._answer(404, {"message": "no such endpoint"})
        script = _script_for(api, request)
        if script.action in {"hang", "close"}:
            return self._silent(script)
        if script.action == "http_error":
            return self._answer(script.http_status or 500, "Internal Server Error")
        status, payload = route(api, request, script)
        self._answer(status, payload)

    def do_GET(self) -> None:
        request = self._record()
        if request.path.startswith("/voice/calls"):
            status, payload = _voice_lookup(self.server.api, request)
        else:
            lookups = {"/hexa/messages/status": _hexa_lookup, "/panel/api/report": _panel_lookup}
            lookup = lookups.get(request.path)
            if lookup is None:
                return self._answer(404, {"message": "no such endpoint"})
            status, payload = lookup(self.server.api, request)
        self._answer(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hanging handler must not hold up teardown
    api: FakeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out break the pipe on purpose; that is the test, not an error."""


#: Seed 000's send parameters and the code it refuses a malformed one with (None: any text). A parameter outside
#: this table is refused E413 ("Invalid inputs"), so the driver can only send what the seed defines.
_HEXA_PARAMS: dict[str, tuple[str, Any] | None] = {
    "to": ("E600", lambda v: v.lstrip("+").isdigit()),
    "body": ("E601", bool),
    "sender": ("E619", lambda v: v.removeprefix("+").isascii() and v.removeprefix("+").isalnum() and 3 <= len(v) <= 16),
    "type": ("E615", lambda v: v in ("TXN", "MKT", "OTP")),
    "ref": ("E608", lambda v: v.isascii() and v.isalnum()),
    "ref1": ("E609", lambda v: v.isascii() and v.isalnum()),
    "ref2": ("E610", lambda v: v.isascii() and v.isalnum()),
    "unicode": ("E604", lambda v: v in ("0", "1", "AUTO")),
    "flash": ("E606", lambda v: v in ("0", "1")),
    "port": ("E603", lambda v: v.isascii() and v.isdigit()),
    "duplicate": ("E605", lambda v: v in ("0", "1")),
    "campaign_id": ("E617", bool),
    "dlrurl": None,
}
#: Seed 000's mandatory parameters and the code each one's absence gets.
_HEXA_REQUIRED = {"to": "E600", "body": "E601", "sender": "E602", "type": "E611"}


def _hexa_refusal(form: dict[str, str]) -> str | None:
    """The seed-000 code a real API would refuse this form with, so a parameter in the wrong format shows."""
    for name, code in _HEXA_REQUIRED.items():
        if not form.get(name):
            return code
    for name, value in form.items():
        if name not in _HEXA_PARAMS:
            return "E413"
        rule = _HEXA_PARAMS[name]
        if rule is not None and not rule[1](value):
            return str(rule[0])
    return None


def _hexa_send(api: FakeApi, request: Recorded, script: Script) -> tuple[int, Any]:
    if request.headers.get("api-key") != API_KEY:
        return 401, {"message": "Invalid API key"}
    if _is_json(request):
        return _hexa_send_many(api, request.json())
    form = request.form()
    if code := _hexa_refusal(form):
        return 400, {"code": code, "message": f"refused by the fake API's seed-000 checks ({code})"}
    if script.action == "reject":
        return script.http_status or 400, {"code": script.code, "message": f"refused with {script.code}"}
    ref = api.new_ref("hx")
    api.stored[ref] = Stored(ref, form["ref"], form["to"], "SUBMITTED")
    return 202, {"code": "E100", "message": "Message Submitted Successfully",
                 "data": {"message_id": ref, "ref": form["ref"], "recipient": form["to"]}}


#: Sms nodes per JSON request the fake account allows (E409; the seed leaves the number to configuration).
HEXA_MAX_NODES = 100


def _hexa_bulk_refusal(payload: Any) -> str | None:
    """The seed-000 code refusing a JSON request as a whole (E407-E412, E400, E404, E405), or None."""
    nodes = payload.get("sms") if isinstance(payload, dict) else None
    if not isinstance(nodes, list) or not nodes:
        return "E407"
    if not all(isinstance(node, dict) and "to" in node for node in nodes):
        return "E408"
    if len(nodes) > HEXA_MAX_NODES:
        return "E409"
    if any("," in str(node["to"]) for node in nodes):
        return "E410"
    if any(not str(node["to"]) for node in nodes):
        return "E411"
    if not payload.get("body"):
        return "E412"
    kind = payload.get("type")
    if kind == "OTP" and len(nodes) > 1:
        return "E404"
    if kind == "TXN" and len(nodes) > 100:
        return "E405"
    if kind != "MKT" and len(nodes) > 1:
        return "E400"
    shared = {key: str(value) for key, value in payload.items() if key != "sms"}
    return _hexa_refusal(shared | {"to": "0", "ref": "x"})


def _hexa_send_many(api: FakeApi, payload: Any) -> tuple[int, Any]:
    """Seed 000's JSON form: the shared fields once, one sms node (``to``, ``ref``) per number."""
    if code := _hexa_bulk_refusal(payload):
        return 400, {"code": code, "message": f"refused by the fake API's seed-000 checks ({code})"}
    if api.bulk_answer not in {"nodes", "bare"}:
        return 400, {"code": api.bulk_answer, "message": "refused as a whole"}
    results = []
    for node in payload["sms"]:
        number, ref = str(node["to"]), str(node.get("ref", ""))
        script = api.scripts.get(number.lstrip("+"), accept())
        if script.action == "reject" or not number.lstrip("+").isdigit():
            code = script.code if script.action == "reject" else "E406"
            results.append({"ref": ref, "recipient": number, "code": code, "message": f"refused with {code}"})
            continue
        provider_ref = api.new_ref("hx")
        api.stored[provider_ref] = Stored(provider_ref, ref, number, "SUBMITTED")
        results.append({"message_id": provider_ref, "ref": ref, "recipient": number})
    answer: dict[str, Any] = {"code": "E100", "message": "Message Submitted Successfully"}
    if api.bulk_answer == "nodes":
        answer["data"] = results
    return 202, answer


def _hexa_lookup(api: FakeApi, request: Recorded) -> tuple[int, Any]:
    found = api.find(request.query.get("message_id"), request.query.get("ref"))
    if found is None:
        return 404, {"code": "E104", "message": "No Records Found"}
    return 200, {"code": "E626", "message": "Request Completed Successfully",
                 "data": {"message_id": found.provider_ref, "ref": found.client_ref, "status": found.status}}


#: Routes the fake panel account has (the panel's convention: 1 promotional, 4 transactional).
PANEL_ROUTES = frozenset({"1", "4"})
#: Flows the fake panel knows: flow id -> the seed-004 code it refuses a send with (None: approved).
PANEL_FLOWS: dict[str, int | None] = {"flow-approved": None, "flow-pending": 401, "flow-disabled": 403}
#: Numbers under India's DLT rules, which need the entity and the template id on every send.
DLT_PREFIX = "91"


def _panel_refusal(payload: dict[str, Any]) -> int | None:
    """The seed-004 code a real panel would refuse these request fields with, so driver tests see them checked."""
    if not str(payload.get("mobiles", "")).isdigit():  # digits only: a '+' or a space is an invalid number
        return 202 if payload.get("mobiles") else 101
    if not payload.get("message"):
        return 102
    if not str(payload.get("sender", "")).isalnum():
        return 203
    route = payload.get("route")
    if not route:
        return 209  # no route given and the account has no default route
    if route not in PANEL_ROUTES:
        return 210
    if "flowId" in payload and (code := PANEL_FLOWS.get(payload["flowId"], 400)):
        return code
    if str(payload.get("mobiles", "")).startswith(DLT_PREFIX):
        if not payload.get("dltEntityId"):
            return 203
        if not payload.get("dltTemplateId"):
            return 211
    return None


def _panel_send(api: FakeApi, request: Recorded, script: Script) -> tuple[int, Any]:
    payload = request.json()
    if request.headers.get("authkey") != API_KEY:
        return 200, {"type": "error", "code": 207, "message": "Invalid authentication key"}
    if code := _panel_refusal(payload):
        return 200, {"type": "error", "code": code, "message": "refused by the fake panel's request checks"}
    if script.action == "reject":
        return script.http_status or 200, {"type": "error", "code": _number(script.code), "message": "refused"}
    ref = api.new_ref("req")
    api.stored[ref] = Stored(ref, payload.get("clientRef", ""), payload["mobiles"], "PENDING")
    return 200, {"type": "success", "message": ref}


def _panel_lookup(api: FakeApi, request: Recorded) -> tuple[int, Any]:
    found = api.find(request.query.get("requestId"), request.query.get("clientRef"))
    if found is None:
        return 200, {"type": "error", "code": "NO_RECORDS", "message": "No records found"}
    return 200, {"type": "success", "data": {"requestId": found.provider_ref, "clientRef": found.client_ref,
                                             "number": found.recipient, "desc": found.status}}


def _voice_send(api: FakeApi, request: Recorded, script: Script) -> tuple[int, Any]:
    payload = request.json()
    if request.headers.get("x-api-key") != API_KEY:
        return 401, {"error": {"code": "AUTH_FAILED", "message": "bad key"}}
    if script.action == "reject":
        return script.http_status or 400, {"error": {"code": script.code, "message": "refused"}}
    ref = api.new_ref("call")
    api.stored[ref] = Stored(ref, payload.get("clientRef", ""), payload["to"], "queued")
    return 201, {"callId": ref, "status": "queued"}


def _voice_lookup(api: FakeApi, request: Recorded) -> tuple[int, Any]:
    call_id = request.path.removeprefix("/voice/calls").strip("/")
    found = api.find(call_id or None, request.query.get("clientRef"))
    if found is None:
        return 404, {"error": {"code": "CALL_NOT_FOUND", "message": "no such call"}}
    return 200, {"callId": found.provider_ref, "clientRef": found.client_ref, "status": found.status,
                 "durationSeconds": found.duration}


def _number(code: str) -> int | str:
    """The panel sends its codes as JSON numbers."""
    return int(code) if code.isdigit() else code


@contextmanager
def running_fake_api() -> Iterator[FakeApi]:
    """The three HTTP APIs on a free 127.0.0.1 port, for the duration of the block."""
    server = _Server((HOST, 0), _Handler)
    server.api = FakeApi(base_url=f"http://{HOST}:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.api
    finally:
        server.api.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- SMTP -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the SMTP server accepted, as raw bytes and parsed."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)


@dataclass
class SmtpRecorder:
    """The aiosmtpd handler: records transactions; ``scripts`` maps a recipient to a reply (or "hang"/"close").

    A script starting with ``rcpt:`` answers RCPT (``"rcpt:550 5.1.1 no such user"``); any other reply string
    answers the end of DATA; "hang" holds the DATA reply past the client's timeout; "close" drops the connection.
    """

    scripts: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    data_attempts: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        script = self.scripts.get(address, "")
        if script.startswith("rcpt:"):
            return script.removeprefix("rcpt:")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0]
        self.data_attempts.append(recipient)
        script = self.scripts.get(recipient, "")
        if script == "hang":
            await asyncio.sleep(HANG_SECONDS)
            return "451 too late"
        if script == "close":
            assert server.transport is not None
            server.transport.close()
            return "451 closed"
        if script:
            return script
        content = envelope.original_content or b""
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 2.0.0 OK queued"

    def attempts_for(self, recipient: str) -> int:
        return self.data_attempts.count(recipient)


@dataclass(frozen=True)
class FakeSmtp:
    host: str
    port: int
    recorder: SmtpRecorder
    ca_file: str | None  #: the self-signed certificate clients must trust, when STARTTLS is on


def self_signed_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A certificate and key for 127.0.0.1 made with the ``openssl`` command; None when it is not installed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def _authenticator(users: dict[str, str], recorder: SmtpRecorder) -> Any:
    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if users.get(login) == password:
                recorder.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


@contextmanager
def running_fake_smtp(*, tls_files: tuple[Path, Path] | None = None, users: dict[str, str] | None = None
                      ) -> Iterator[FakeSmtp]:
    """An SMTP server on a free 127.0.0.1 port; STARTTLS when ``tls_files`` is given, AUTH when ``users`` is."""
    recorder = SmtpRecorder()
    kwargs: dict[str, Any] = {}
    if tls_files is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
        kwargs["tls_context"] = context
    if users is not None:
        kwargs["authenticator"] = _authenticator(users, recorder)
    controller = Controller(recorder, hostname=HOST, port=free_port(), server_hostname="fake-smtp.test", **kwargs)
    controller.start()
    try:
        yield FakeSmtp(HOST, controller.port, recorder, str(tls_files[0]) if tls_files else None)
    finally:
        controller.stop()
