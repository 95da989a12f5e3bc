"""The message state machine on a real database: a move happens only from the named states and extra
conditions, leaves one history row, makes terminal states FINAL, and queues the dlrUrl callback with it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import select

from schema.models import Message, MessageEvent, OutboundCallback, Request
from schema.states import MessageState
from worker.db import session_scope
from worker.policy.transitions import MESSAGE_COLUMNS, callback_body, transition, utcnow

from factories import Tenant

S = MessageState


def make_message(tenant: Tenant, merchant_id: int | None, message_id: str = "m1", status: S = S.QUEUED,
                 options: dict[str, Any] | None = None, units: int = 2) -> None:
    with session_scope() as session:
        if session.get(Request, "r1") is None:
            session.add(Request(id="r1", tenant_id=tenant.tenant_id, merchant_id=merchant_id, kind="sms",
                                payload_sha256="x", status="ACCEPTED", result={}))
            session.flush()
        session.add(Message(id=message_id, request_id="r1", merchant_id=merchant_id, channel="SMS",
                            message_type="TXN", recipient="+18135551234", status=status.value, units=units,
                            options=options or {}))


def move(message_id: str, sources: tuple[S, ...], target: S, **kw: Any) -> bool:
    with session_scope() as session:
        return transition(session, message_id, sources, target, **kw)


def state(message_id: str = "m1") -> tuple[Any, ...]:
    with session_scope() as session:
        m = session.get(Message, message_id)
        assert m is not None
        return m.status, m.freshness, m.final_at, m.updated_at, m.provider


def events(message_id: str = "m1") -> list[tuple[str | None, str, dict[str, Any]]]:
    with session_scope() as session:
        rows = session.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id)
                               .order_by(MessageEvent.id))
        return [(e.from_state, e.to_state, dict(e.detail)) for e in rows]


def callbacks() -> list[tuple[Any, ...]]:
    with session_scope() as session:
        rows = session.scalars(select(OutboundCallback).order_by(OutboundCallback.created_at))
        return [(c.message_id, c.merchant_id, c.event_status, c.url, c.state, c.attempts, c.body, c.next_attempt_at)
                for c in rows]


def test_utcnow_is_aware_utc() -> None:
    assert utcnow().tzinfo is dt.UTC
    assert abs(utcnow() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_a_move_from_the_named_state_happens_once_with_its_history(tenant: Tenant, gym_a: int) -> None:
    make_message(tenant, gym_a)
    before = utcnow()
    assert move("m1", (S.QUEUED,), S.DISPATCHING, detail={"worker": "w1"}, provider="sim") is True
    status, freshness, final_at, updated_at, provider = state()
    assert (status, freshness, final_at, provider) == ("DISPATCHING", "PROVISIONAL", None, "sim")
    assert before <= updated_at <= utcnow()
    assert events() == [("QUEUED", "DISPATCHING", {"worker": "w1"})]
    assert move("m1", (S.QUEUED,), S.DISPATCHING) is False  # a repeat finds it elsewhere: nothing changes
    assert events() == [("QUEUED", "DISPATCHING", {"worker": "w1"})]
    assert callbacks() == []


def test_the_history_row_carries_the_time_of_the_move(tenant: Tenant, gym_a: int) -> None:
    make_message(tenant, gym_a)
    move("m1", (S.QUEUED,), S.DISPATCHING)
    with session_scope() as session:
        at = session.scalars(select(MessageEvent.at).where(MessageEvent.message_id == "m1")).one()
    assert at == state()[3]  # the same instant as the message's updated_at, not the database's clock


def test_every_callback_gets_its_own_id(tenant: Tenant, gym_a: int) -> None:
    for message_id in ("m1", "m2"):
        make_message(tenant, gym_a, message_id, status=S.SENT, options={"dlrUrl": "https://example.com/dlr"})
        assert move(message_id, (S.SENT,), S.DELIVERED)
    with session_scope() as session:
        ids = session.scalars(select(OutboundCallback.id)).all()
    assert len(set(ids)) == 2 and all(len(i) == 36 for i in ids)


def test_a_move_from_several_states_records_no_single_source(tenant: Tenant, gym_a: int) -> None:
    make_message(tenant, gym_a, status=S.AMBIGUOUS)
    assert move("m1", (S.DISPATCHING, S.AMBIGUOUS), S.SENT) is True
    assert events() == [(None, "SENT", {})]


def test_only_the_named_message_moves(tenant: Tenant, gym_a: int) -> None:
    make_message(tenant, gym_a, "m1")
    make_message(tenant, gym_a, "m2")
    assert move("m1", (S.QUEUED,), S.DISPATCHING) is True
    assert state("m2")[0] == "QUEUED"
    assert events("m2") == []


def test_an_extra_condition_that_no_longer_holds_stops_the_move(tenant: Tenant, gym_a: int) -> None:
    make_message(tenant, gym_a, units=2)
    assert move("m1", (S.QUEUED,), S.DISPATCHING, where=[MESSAGE_COLUMNS.units == 3]) is False
    assert state()[0] == "QUEUED" and events() == []
    assert move("m1", (S.QUEUED,), S.DISPATCHING, where=[MESSAGE_COLUMNS.units == 2]) is True


@pytest.mark.parametrize("final", (S.DELIVERED, S.FAILED, S.EXPIRED))
def test_a_terminal_state_is_final_and_queues_the_signed_callback_in_the_same_transaction(
        tenant: Tenant, gym_a: int, final: S) -> None:
    make_message(tenant, gym_a, status=S.SENT, options={"dlrUrl": "https://example.com/dlr"})
    assert move("m1", (S.SENT,), final, error_code="E900" if final is S.FAILED else None) is True
    status, freshness, final_at, updated_at, _ = state()
    assert (status, freshness, final_at) == (final.value, "FINAL", updated_at)
    [(message_id, merchant_id, event_status, url, cb_state, attempts, body, due)] = callbacks()
    assert (message_id, merchant_id, event_status, url, cb_state, attempts, due) == (
        "m1", gym_a, final.value, "https://example.com/dlr", "PENDING", 0, final_at)
    assert body == callback_body("m1", "r1", final, final_at, "E900" if final is S.FAILED else None, 2)


def test_no_callback_without_a_dlr_url_or_a_merchant_or_before_the_end(tenant: Tenant, gym_a: int) -> None:
    make_message(tenant, gym_a, "m1", status=S.SENT)
    make_message(tenant, None, "m2", status=S.SENT, options={"dlrUrl": "https://example.com/dlr"})
    make_message(tenant, gym_a, "m3", status=S.QUEUED, options={"dlrUrl": "https://example.com/dlr"})
    assert move("m1", (S.SENT,), S.DELIVERED) and move("m2", (S.SENT,), S.DELIVERED)
    assert move("m3", (S.QUEUED,), S.DISPATCHING)
    assert callbacks() == []


def test_a_long_dlr_url_is_cut_to_the_column(tenant: Tenant, gym_a: int) -> None:
    url = "https://example.com/" + "a" * 2500
    make_message(tenant, gym_a, status=S.SENT, options={"dlrUrl": url})
    move("m1", (S.SENT,), S.DELIVERED)
    assert callbacks()[0][3] == url[:2000]


def test_the_callback_body_is_compact_sorted_json_in_utc() -> None:
    at = dt.datetime(2025, 3, 21, 9, 0, 1, 500000, tzinfo=dt.UTC)
    body = callback_body("m1", "r1", S.DELIVERED, at, None, 3)
    assert body == ('{"at":"2025-03-21T09:00:01.500000Z","errorCode":null,"freshness":"FINAL","messageId":"m1",'
                    '"requestId":"r1","status":"DELIVERED","type":"message.final","units":3}')
    assert json.loads(body)["units"] == 3


def test_the_callback_body_echoes_the_merchant_s_tags_only() -> None:
    at = dt.datetime(2025, 3, 21, 9, 0, 1, tzinfo=dt.UTC)
    options = {"dlrUrl": "https://example.com/dlr", "ref": "o-1", "ref2": "", "campaignName": "June"}
    body = json.loads(callback_body("m1", "r1", S.FAILED, at, "E815", 2, options))
    assert body["tags"] == {"ref": "o-1", "campaignName": "June"}
    assert "tags" not in json.loads(callback_body("m1", "r1", S.FAILED, at, "E815", 2, {"dlrUrl": "x"}))
