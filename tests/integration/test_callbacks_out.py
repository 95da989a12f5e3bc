"""Outbound dlrUrl callbacks end to end (docs/reliability.md S1/S2): a message becomes FINAL, its callback row is
claimed, signed and POSTed to a recording server on 127.0.0.1, and the outcome is recorded on the row.

Signatures are checked with ``standardwebhooks`` (an independent implementation of the scheme), not with our
own ``verify``. Hostile URLs never reach the network: IP literals are refused before connecting and names go
through a stub resolver, so nothing here sends traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from schema.models import Merchant, OutboundCallback
from schema.states import CallbackState, MessageState
from worker.catalogue import Code

from factories import Tenant, make_merchant, make_tenant, sms
from support import WorkerProcess

SMS_TASK = "hexavox.sms.send.v1"
DELIVER_TASK = "hexavox.internal.deliver_callbacks"
_numbers = itertools.count(1000)

#: What the stub DNS knows; any other name is a test bug (and would otherwise go to real DNS).
STUB_DNS: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "rebind.attacker.example": ["10.0.0.7"],
    "mixed.attacker.example": ["93.184.215.14", "192.168.0.10"],
    "loop.attacker.example": ["127.0.0.1"],
}


def stub_resolver(host: str, port: int) -> list[str]:
    assert host in STUB_DNS, f"unexpected DNS lookup for {host!r}"
    return list(STUB_DNS[host])


# --- a recording receiver on 127.0.0.1 -----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """The merchant's endpoint: what it received, and its base URL."""

    base: str = ""
    port: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: Receiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        assert isinstance(self.server, _Server)
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with receiver.lock:
            receiver.received.append(Received(self.path, dict(self.headers.items()), body))
        routes = {"/ok": (200, {}), "/fail": (500, {}),
                  "/redirect": (302, {"Location": f"{receiver.base}/target"}), "/target": (200, {})}
        status, extra = routes.get(self.path, (404, {}))
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    httpd = _Server(rec)
    rec.port = httpd.server_port
    rec.base = f"http://127.0.0.1:{rec.port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- helpers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    tenant: Tenant
    merchant_pk: int


@pytest.fixture
def shop(hexavox_env: dict[str, str]) -> Shop:
    tenant = make_tenant()
    return Shop(tenant, make_merchant(tenant))


def settled(shop: Shop, dlr_url: str, count: int = 1) -> list[str]:
    """``count`` SMS with ``dlrUrl`` through intake, dispatch and a DELIVERED report: their message ids."""
    from worker.db import session_scope
    from worker.policy.dispatch import DispatchStep, dispatch_message
    from worker.policy.transitions import transition
    from worker.runner import run_send_job
    from worker.sending import provider_sender
    from worker.settings import get_settings

    numbers = [f"+1813555{next(_numbers)}" for _ in range(count)]
    payload = sms(shop.tenant, to=numbers if count > 1 else numbers[0], dlrUrl=dlr_url)
    answer = run_send_job(SMS_TASK, payload, str(uuid.uuid4())).result
    ids = [row["messageId"] for row in answer["messages"] if row["status"] == "QUEUED"]
    assert len(ids) == count, answer
    settings = get_settings()
    sender = provider_sender(settings)
    for message_id in ids:
        assert dispatch_message(message_id, settings, sender) is DispatchStep.SENT
        with session_scope() as session:
            assert transition(session, message_id, [MessageState.SENT], MessageState.DELIVERED)
    return ids


def settled_to(shop: Shop, url: str) -> str:
    """A settled message whose callback row points at ``url``, whatever intake would say of it today: intake now
    refuses literal hostile addresses (E819), but rows written before, and names that resolve to private addresses
    only at callback time, must still be refused when the callback is sent."""
    from worker.db import session_scope

    [message_id] = settled(shop, "https://merchant.example/dlr")
    with session_scope() as session:
        session.execute(update(OutboundCallback).where(OutboundCallback.message_id == message_id).values(url=url))
    return message_id


def callback_of(message_id: str) -> OutboundCallback:
    from worker.db import session_scope

    with session_scope() as session:
        return session.execute(select(OutboundCallback).where(OutboundCallback.message_id == message_id)).scalar_one()


def secrets_of(merchant_pk: int) -> list[str]:
    from worker.db import session_scope

    with session_scope() as session:
        merchant = session.get(Merchant, merchant_pk)
        assert merchant is not None
        return list(merchant.webhook_secrets)


def run_task() -> dict[str, int]:
    from tasks.callbacks import deliver_callbacks

    counts: dict[str, int] = deliver_callbacks()
    return counts


def verifies(secret: str, request: Received) -> bool:
    """The independent check: the ``standardwebhooks`` reference library, as a merchant would run it."""
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def tampered(request: Received) -> Received:
    body = bytearray(request.body)
    body[len(body) // 2] ^= 0x01
    return Received(request.path, request.headers, bytes(body))


def allow_private(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_ALLOW_PRIVATE_CALLBACKS", "1" if on else "0")
    reset_settings()


def send_claimed(resolver: Any = stub_resolver) -> dict[str, str]:
    """Claim every due callback and attempt each once through the policy functions: {row id: outcome}."""
    from worker.policy.callbacks_out import claim_due, send_one
    from worker.settings import get_settings

    return {due.id: send_one(due, get_settings(), resolver=resolver) for due in claim_due(100)}


# --- delivery and signatures ---------------------------------------------------------------------------------------


def test_a_final_message_gets_one_signed_callback_that_verifies_independently(shop: Shop, receiver: Receiver) -> None:
    # Given a message with a dlrUrl that became FINAL
    [message_id] = settled(shop, f"{receiver.base}/ok")
    row = callback_of(message_id)
    assert (row.state, row.attempts, row.event_status) == (CallbackState.PENDING.value, 0, "DELIVERED")
    # When the task runs (twice: the second run must find nothing to do)
    assert run_task() == {"claimed": 1, "delivered": 1, "retry": 0, "refused": 0, "failed": 0, "error": 0}
    assert run_task()["claimed"] == 0
    # Then exactly one POST arrived, carrying the stored bytes, signed with the merchant's secret
    [request] = receiver.requests()
    assert request.path == "/ok"
    assert request.body == row.body.encode("utf-8")
    assert request.headers["webhook-id"] == row.id
    [secret] = secrets_of(shop.merchant_pk)
    assert Webhook(secret).verify(request.body, request.headers)["messageId"] == message_id
    assert not verifies(secret, tampered(request))
    done = callback_of(message_id)
    assert (done.state, done.attempts, done.last_error) == (CallbackState.DELIVERED.value, 1, None)


def test_rotation_keeps_old_and_new_receivers_verifying(shop: Shop, receiver: Receiver) -> None:
    from worker.callbacks.signing import new_secret
    from worker.db import session_scope
    from worker.policy.callbacks_out import rotate_secret

    [old] = secrets_of(shop.merchant_pk)
    stranger = new_secret()
    settled(shop, f"{receiver.base}/ok")
    run_task()
    # When the merchant's secret is rotated (two secrets kept) and another message becomes FINAL
    with session_scope() as session:
        new = rotate_secret(session, shop.merchant_pk)
    assert secrets_of(shop.merchant_pk) == [old, new]
    settled(shop, f"{receiver.base}/ok")
    run_task()
    # And rotated once more: the oldest secret is pushed out, the newest two sign
    with session_scope() as session:
        newest = rotate_secret(session, shop.merchant_pk)
    assert secrets_of(shop.merchant_pk) == [new, newest]
    settled(shop, f"{receiver.base}/ok")
    run_task()
    before, during, after = receiver.requests()
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    # Then the verification matrix, with the independent library
    matrix = {
        (label, who): verifies(secret, request)
        for label, request in [("before", before), ("during", during), ("after", after),
                               ("during-tampered", tampered(during))]
        for who, secret in [("old", old), ("new", new), ("newest", newest), ("stranger", stranger)]
    }
    expected = {key: False for key in matrix}
    expected.update({("before", "old"): True, ("during", "old"): True, ("during", "new"): True,
                     ("after", "new"): True, ("after", "newest"): True})
    assert matrix == expected


def test_rotation_refuses_to_keep_no_secret(shop: Shop) -> None:
    from worker.db import session_scope
    from worker.policy.callbacks_out import rotate_secret

    with pytest.raises(ValueError), session_scope() as session:
        rotate_secret(session, shop.merchant_pk, keep=0)
    with session_scope() as session:
        only = rotate_secret(session, shop.merchant_pk, keep=1)
    assert secrets_of(shop.merchant_pk) == [only]


# --- failures: retry, redirect, give up ----------------------------------------------------------------------------


def test_a_server_error_leaves_the_callback_pending_with_a_later_attempt(shop: Shop, receiver: Receiver) -> None:
    [message_id] = settled(shop, f"{receiver.base}/fail")
    first_due = callback_of(message_id).next_attempt_at
    assert run_task()["retry"] == 1
    row = callback_of(message_id)
    assert (row.state, row.attempts, row.last_error) == (CallbackState.PENDING.value, 1, "HTTP 500")
    assert row.next_attempt_at > first_due
    assert len(receiver.requests()) == 1


def test_a_redirect_is_a_failed_attempt_and_is_never_followed(shop: Shop, receiver: Receiver) -> None:
    [message_id] = settled(shop, f"{receiver.base}/redirect")
    assert run_task()["retry"] == 1
    row = callback_of(message_id)
    assert (row.state, row.attempts) == (CallbackState.PENDING.value, 1)
    assert "302" in (row.last_error or "")
    assert [r.path for r in receiver.requests()] == ["/redirect"], "the redirect target must never be hit"


def test_the_last_allowed_attempt_failing_gives_the_callback_up(shop: Shop, receiver: Receiver) -> None:
    from worker.callbacks.deliver import MAX_ATTEMPTS
    from worker.db import session_scope

    [message_id] = settled(shop, f"{receiver.base}/fail")
    with session_scope() as session:
        session.execute(update(OutboundCallback).where(OutboundCallback.message_id == message_id)
                        .values(attempts=MAX_ATTEMPTS - 1))
    assert run_task()["failed"] == 1
    row = callback_of(message_id)
    assert (row.state, row.attempts) == (CallbackState.FAILED.value, MAX_ATTEMPTS)
    assert (row.last_error or "").startswith(f"gave up after {MAX_ATTEMPTS} attempts")


# --- SSRF: hostile URLs ----------------------------------------------------------------------------------------------


def hostile_urls(port: int) -> list[str]:
    """A dozen of the worst from tests/unit/test_callbacks_egress.py, aimed at the live receiver where possible."""
    return [
        f"http://127.0.0.1:{port}/ok",                      # loopback, with the test switch off
        "http://169.254.169.254/latest/meta-data/",          # cloud metadata
        "http://10.0.0.1/",                                  # private
        "http://100.64.0.1/",                                # CGNAT
        f"http://[::1]:{port}/ok",                           # IPv6 loopback
        f"http://[::ffff:127.0.0.1]:{port}/ok",              # IPv4-mapped loopback
        f"http://2130706433:{port}/ok",                      # decimal 127.0.0.1
        f"http://0x7f.1:{port}/ok",                          # hex short form
        f"http://a@127.0.0.1:{port}/ok",                     # userinfo
        f"http://[64:ff9b::7f00:1]:{port}/ok",               # NAT64 of loopback
        f"http://[2002:7f00:1::]:{port}/ok",                 # 6to4 of loopback
        f"http://localhost:{port}/ok",                       # a name for loopback
        f"http://loop.attacker.example:{port}/ok",           # DNS answer: 127.0.0.1
        f"http://rebind.attacker.example:{port}/ok",         # DNS answer: 10.0.0.7
        f"http://mixed.attacker.example:{port}/ok",          # one public, one private record
    ]


#: Refused even with the test-only loopback switch on: it admits loopback and nothing else.
ALWAYS_REFUSED = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://100.64.0.1/",
                  "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://rebind.attacker.example/",
                  "http://mixed.attacker.example/"]


def assert_all_refused(message_ids: list[str], urls: list[str], outcomes: dict[str, str]) -> None:
    rows = {url: callback_of(mid) for url, mid in zip(urls, message_ids, strict=True)}
    got = {url: (outcomes.get(row.id), row.state, (row.last_error or "")[:4]) for url, row in rows.items()}
    refused = ("refused", CallbackState.FAILED.value, Code.CALLBACK_URL_REFUSED.value)
    assert got == {url: refused for url in urls}


def test_hostile_callback_urls_are_refused_and_nothing_is_sent(shop: Shop, receiver: Receiver,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Given FINAL messages whose callback rows point at hostile URLs
    urls = hostile_urls(receiver.port)
    message_ids = [settled_to(shop, url) for url in urls]
    # When the callbacks are attempted in the production configuration (loopback not allowed)
    allow_private(monkeypatch, False)
    outcomes = send_claimed()
    # Then each is FAILED with E819 and the receiver heard nothing
    assert len(outcomes) == len(urls) == 15
    assert_all_refused(message_ids, urls, outcomes)
    assert receiver.requests() == []


def test_private_addresses_stay_refused_with_the_test_loopback_switch_on(shop: Shop, receiver: Receiver) -> None:
    message_ids = [settled_to(shop, url) for url in ALWAYS_REFUSED]
    outcomes = send_claimed()
    assert_all_refused(message_ids, ALWAYS_REFUSED, outcomes)
    assert receiver.requests() == []


# --- claiming --------------------------------------------------------------------------------------------------------


def test_two_workers_claiming_at_once_never_get_the_same_row(shop: Shop, receiver: Receiver) -> None:
    from worker.policy.callbacks_out import claim_due

    settled(shop, f"{receiver.base}/ok", count=24)
    start = threading.Barrier(6)
    claimed: list[list[str]] = [[] for _ in range(6)]

    def worker(slot: int) -> None:
        start.wait()
        while batch := claim_due(2):
            claimed[slot] += [due.id for due in batch]

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [row_id for ids in claimed for row_id in ids]
    assert len(every) == 24 and len(set(every)) == 24, "each row claimed exactly once"
    assert claim_due(100) == [], "claimed rows are leased, not due"


def test_a_lease_hides_a_claimed_row_until_it_expires(shop: Shop, receiver: Receiver) -> None:
    from worker.db import session_scope
    from worker.policy.callbacks_out import LEASE_SECONDS, claim_due

    [message_id] = settled(shop, f"{receiver.base}/ok")
    [due] = claim_due(10)
    assert due.secrets == tuple(secrets_of(shop.merchant_pk))
    leased_until = callback_of(message_id).next_attempt_at
    assert leased_until > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=LEASE_SECONDS - 5)
    assert claim_due(10) == []
    # A worker that died holding the lease: once it expires the row is claimable again
    with session_scope() as session:
        session.execute(update(OutboundCallback).where(OutboundCallback.id == due.id)
                        .values(next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert [again.id for again in claim_due(10)] == [due.id]


# --- through a real worker -------------------------------------------------------------------------------------------


def test_a_real_worker_delivers_the_callback_of_a_final_message(celery_worker: WorkerProcess, receiver: Receiver,
                                                                hexavox_env: dict[str, str]) -> None:
    from kombu import Connection

    from worker.celery_app import app
    from worker.queues import CALLBACKS, route_task

    tenant = make_tenant()
    shop = Shop(tenant, make_merchant(tenant))
    [message_id] = settled(shop, f"{receiver.base}/ok")
    assert route_task(DELIVER_TASK, (), {}, {}) == {"queue": CALLBACKS}  # what send_task and beat publish to
    with Connection(hexavox_env["HEXAVOX_BROKER_URL"]) as conn:
        app.send_task(DELIVER_TASK, connection=conn)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and callback_of(message_id).state == CallbackState.PENDING.value:
        time.sleep(0.2)
    row = callback_of(message_id)
    assert row.state == CallbackState.DELIVERED.value, celery_worker.log()[-3000:]
    [request] = receiver.requests()
    assert request.body == row.body.encode("utf-8")
    assert verifies(secrets_of(shop.merchant_pk)[-1], request)
