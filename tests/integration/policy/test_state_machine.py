"""The message state machine walked pair by pair on a real database: every move the table allows happens with
the effects its final state declares (balance, units, cost, period, freshness, callback, history), every other
move is refused before anything is written. The expected table is written out here on purpose: changing a row or
an effect in worker/policy/transitions.py without changing it here fails."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from schema.models import Balance, Merchant, Message, MessageEvent, OutboundCallback, Request, UsagePeriod
from schema.states import TERMINAL_STATES, MessageState
from worker.db import session_scope
from worker.errors import InvalidTransition
from worker.policy.quota import reserve_units
from worker.policy.transitions import (
    FINAL,
    MESSAGE_COLUMNS,
    MOVES,
    MessageFields,
    Settlement,
    callback_body,
    check_move,
    queue_final_callback,
    transition,
    transition_many,
    utcnow,
)

from factories import Tenant, make_merchant

S = MessageState

#: Every allowed move; any pair not listed must be refused.
EXPECTED_MOVES: dict[S, set[S]] = {
    S.SCHEDULED: {S.QUEUED, S.REFUSED},
    S.QUEUED: {S.DISPATCHING, S.FAILED, S.REFUSED},
    S.DISPATCHING: {S.SENT, S.DELIVERED, S.FAILED, S.AMBIGUOUS, S.QUEUED},
    S.SENT: {S.DELIVERED, S.FAILED, S.EXPIRED},
    S.AMBIGUOUS: {S.SENT, S.QUEUED, S.DELIVERED, S.FAILED, S.EXPIRED},
    S.DELIVERED: set(), S.FAILED: set(), S.EXPIRED: set(), S.REFUSED: set(),
}
#: What each final state does to the balance: units still used afterwards (of 3 reserved), and what the message
#: records (units, cost, whether it keeps its period).
KEPT, REFUNDED, VOIDED = "kept", "refunded", "voided"
EXPECTED_FINAL = {S.DELIVERED: KEPT, S.FAILED: REFUNDED, S.EXPIRED: REFUNDED, S.REFUSED: VOIDED}
URL = "https://example.com/dlr"
#: A message's options: its dlrUrl and a tag of the merchant's, echoed in the callback.
OPTIONS = {"dlrUrl": URL, "ref": "order-7"}
RESERVED, COST = 3, 4200




def charged_message(tenant: Tenant, merchant_id: int | None, message_id: str, status: S, *, channel: str = "SMS",
                    dlr: bool = True, period: dt.date | None = None, request: str = "r1", units: int = RESERVED
                    ) -> dt.date:
    """A message in ``status`` with RESERVED units really taken from the merchant's balance; its period."""
    final = status in TERMINAL_STATES
    with session_scope() as session:
        if session.get(Request, request) is None:
            session.add(Request(id=request, tenant_id=tenant.tenant_id, merchant_id=merchant_id, kind="sms",
                                payload_sha256="x", status="ACCEPTED", result={}))
            session.flush()
        free = status == S.REFUSED  # a refused message was never charged
        if merchant_id is not None and period is None and not free:
            merchant = session.get(Merchant, merchant_id)
            assert merchant is not None
            period = reserve_units(session, merchant, channel, units)
        session.add(Message(id=message_id, request_id=request, merchant_id=merchant_id, channel=channel,
                            message_type="TXN", recipient="+18135551234", status=status.value,
                            units=0 if free else units, cost_micros=0 if free else COST, period_start=period,
                            options=OPTIONS if dlr else {}, error_code="E700" if free else None,
                            freshness="FINAL" if final else "PROVISIONAL", final_at=utcnow() if final else None))
    return period or dt.date.today()


def used(merchant_id: int, channel: str = "SMS") -> int:
    with session_scope() as session:
        balance = session.get(Balance, (merchant_id, channel))
        assert balance is not None
        return int(balance.used)


def snapshot(message_id: str) -> dict[str, Any]:
    with session_scope() as session:
        m = session.get(Message, message_id)
        assert m is not None
        return {"status": m.status, "freshness": m.freshness, "final_at": m.final_at, "updated_at": m.updated_at,
                "units": m.units, "cost_micros": m.cost_micros, "period_start": m.period_start,
                "error_code": m.error_code}


def history(message_id: str) -> list[tuple[str | None, str]]:
    with session_scope() as session:
        return [(e.from_state, e.to_state) for e in session.scalars(
            select(MessageEvent).where(MessageEvent.message_id == message_id).order_by(MessageEvent.id))]


def callbacks(message_id: str) -> list[tuple[str, str, str]]:
    with session_scope() as session:
        return [(c.event_status, c.url, c.body) for c in session.scalars(
            select(OutboundCallback).where(OutboundCallback.message_id == message_id))]


def assert_reached(message_id: str, source: S, target: S, merchant_id: int, period: dt.date, used_before: int,
                   *, units_after: int = RESERVED, request: str = "r1") -> None:
    """The message is in ``target`` with exactly the effects EXPECTED_FINAL declares for it."""
    after = snapshot(message_id)
    assert after["status"] == target.value
    assert history(message_id)[-1] == (source.value, target.value)
    effect = EXPECTED_FINAL.get(target)
    if effect is None:
        assert (after["freshness"], after["final_at"]) == ("PROVISIONAL", None)
        assert (after["units"], after["cost_micros"], after["period_start"]) == (RESERVED, COST, period)
        assert used(merchant_id) == used_before
        assert callbacks(message_id) == []
        return
    assert (after["freshness"], after["final_at"]) == ("FINAL", after["updated_at"])
    voided = effect == VOIDED
    assert (after["units"], after["cost_micros"], after["period_start"]) == (
        (0, 0, None) if voided else (units_after, COST, period))
    assert used(merchant_id) == used_before - (RESERVED if effect in (REFUNDED, VOIDED) else 0)
    body = callback_body(message_id, request, target, after["final_at"], after["error_code"], after["units"],
                         OPTIONS)
    assert '"tags":{"ref":"order-7"}' in body
    assert callbacks(message_id) == [(target.value, URL, body)]


def assert_untouched(message_id: str, before: dict[str, Any], merchant_id: int, used_before: int) -> None:
    assert snapshot(message_id) == before
    assert history(message_id) == []
    assert callbacks(message_id) == []
    assert used(merchant_id) == used_before


# -- the table itself --------------------------------------------------------------------------------------------


def test_the_table_is_the_one_written_here() -> None:
    assert {source: set(targets) for source, targets in MOVES.items()} == EXPECTED_MOVES
    assert set(FINAL) == TERMINAL_STATES == set(EXPECTED_FINAL)
    declared = {Settlement.KEEP: KEPT, Settlement.REFUND: REFUNDED, Settlement.VOID: VOIDED}
    assert {state: declared[effect.settlement] for state, effect in FINAL.items()} == EXPECTED_FINAL
    assert all(effect.callback for effect in FINAL.values())


def test_the_columns_a_move_may_set_are_those_transition_takes() -> None:
    import inspect

    keywords = {name for name, p in inspect.signature(transition).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"detail", "where"}
    assert keywords == set(MessageFields.__annotations__) == {
        "provider", "provider_ref", "provider_priced", "units", "cost_micros", "error_code", "error_detail",
        "dispatch_attempts", "reconcile_attempts", "reconcile_after"}


# -- every pair ---------------------------------------------------------------------------------------------------
# One test per source state walks every target, each pair on messages of its own (a test per pair would spend most
# of its time emptying tables and creating the merchant).


@contextlib.contextmanager
def pair(source: S, target: S) -> Iterator[None]:
    """Name the pair in any assertion that fails inside."""
    try:
        yield
    except AssertionError as err:
        raise AssertionError(f"{source.value} -> {target.value}: {err}") from err


@pytest.mark.parametrize("source", list(S))
def test_every_move_from_a_state_happens_with_its_effects_or_is_refused(tenant: Tenant, source: S) -> None:
    big = make_merchant(tenant, "big", sms=1000)
    for target in S:
        with pair(source, target):
            mid = f"{source.value}-{target.value}"
            period = charged_message(tenant, big, mid, source)
            before, used_before = snapshot(mid), used(big)
            if target not in EXPECTED_MOVES[source]:
                with session_scope() as session, pytest.raises(InvalidTransition) as refused:
                    transition(session, mid, [source], target)
                assert str(refused.value) == f"no move {source.value} -> {target.value}"
                assert_untouched(mid, before, big, used_before)
                continue
            with session_scope() as session:
                assert transition(session, mid, [source], target, error_code="E900") is True
            assert_reached(mid, source, target, big, period, used_before)
            settled = snapshot(mid), used(big), callbacks(mid)
            with session_scope() as session:  # a repeat finds it elsewhere: nothing refunded or announced twice
                assert transition(session, mid, [source], target) is False
            assert (snapshot(mid), used(big), callbacks(mid)) == settled
            assert len(history(mid)) == 1


@pytest.mark.parametrize("source", list(S))
def test_every_move_from_a_state_happens_as_a_set_with_the_same_effects(tenant: Tenant, source: S) -> None:
    big = make_merchant(tenant, "big", sms=1000)
    other = S.SENT if source != S.SENT else S.AMBIGUOUS
    for target in S:
        with pair(source, target):
            request = f"{source.value}-{target.value}"
            ids = [f"{request}-{n}" for n in (1, 2, 3)]
            period = charged_message(tenant, big, ids[0], source, request=request)
            charged_message(tenant, big, ids[1], source, request=request)
            charged_message(tenant, big, ids[2], other, request=request)  # same request, another state: stays
            before = {mid: snapshot(mid) for mid in ids}
            used_before = used(big)
            condition = MESSAGE_COLUMNS.request_id == request
            if target not in EXPECTED_MOVES[source]:
                with session_scope() as session, pytest.raises(InvalidTransition):
                    transition_many(session, condition, [source], target)
                for mid in ids:
                    assert_untouched(mid, before[mid], big, used_before)
                continue
            with session_scope() as session:
                assert sorted(transition_many(session, condition, [source], target, error_code="E900")) == ids[:2]
            refunded = RESERVED if EXPECTED_FINAL.get(target) in (REFUNDED, VOIDED) else 0
            assert used(big) == used_before - 2 * refunded
            for mid in ids[:2]:
                assert_reached(mid, source, target, big, period, used(big) + refunded, request=request)
            assert snapshot(ids[2]) == before[ids[2]] and history(ids[2]) == []
            with session_scope() as session:
                assert transition_many(session, condition, [source], target) == []
            assert used(big) == used_before - 2 * refunded


# -- what a move may not do --------------------------------------------------------------------------------------


def test_a_move_naming_one_forbidden_source_among_allowed_ones_is_refused_whole(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT)
    before = snapshot("m1")
    with session_scope() as session, pytest.raises(InvalidTransition) as refused:
        transition(session, "m1", [S.SENT, S.QUEUED, S.REFUSED], S.EXPIRED)
    assert str(refused.value) == "no move QUEUED|REFUSED -> EXPIRED"
    assert_untouched("m1", before, gym_a, RESERVED)


def test_a_move_from_no_state_is_refused() -> None:
    with pytest.raises(InvalidTransition) as refused:
        check_move([], S.QUEUED)
    assert str(refused.value) == "no move (no state) -> QUEUED"
    assert check_move([S.SENT, S.AMBIGUOUS], S.DELIVERED) == ["SENT", "AMBIGUOUS"]


def test_a_move_cannot_set_a_column_of_the_state_machine(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.QUEUED)
    before = snapshot("m1")
    with session_scope() as session, pytest.raises(TypeError):
        transition(session, "m1", [S.QUEUED], S.FAILED, freshness="PROVISIONAL")  # type: ignore[call-arg]
    with session_scope() as session, pytest.raises(InvalidTransition) as refused:
        wrong: dict[str, Any] = {"period_start": None, "status": "QUEUED"}
        transition_many(session, MESSAGE_COLUMNS.id == "m1", [S.QUEUED], S.FAILED, **wrong)
    assert str(refused.value) == "a move cannot set period_start, status"
    assert_untouched("m1", before, gym_a, RESERVED)


def test_only_a_call_settles_to_other_units(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT)
    before = snapshot("m1")
    with session_scope() as session, pytest.raises(InvalidTransition) as refused:
        transition(session, "m1", [S.SENT], S.DELIVERED, units=1)
    assert str(refused.value) == "only a call's units change when it settles (its real minutes)"
    for target in (S.FAILED, S.EXPIRED, S.AMBIGUOUS):
        with session_scope() as session, pytest.raises(InvalidTransition) as refused:
            transition(session, "m1", [S.SENT], target, units=0)
        assert str(refused.value) == f"a move to {target.value} cannot change what the message was charged"
    assert_untouched("m1", before, gym_a, RESERVED)


def test_a_refusal_that_names_its_units_is_still_free_and_refunded(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SCHEDULED)
    with session_scope() as session:
        assert transition(session, "m1", [S.SCHEDULED], S.REFUSED, units=0, error_code="E900")
    assert (snapshot("m1")["units"], used(gym_a)) == (0, 0)


# -- the balance -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minutes", "after"), [(1, 1), (3, 3), (5, 5)])
def test_a_delivered_call_settles_its_real_minutes(tenant: Tenant, gym_a: int, minutes: int, after: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT, channel="VOICE")
    with session_scope() as session:
        assert transition(session, "m1", [S.SENT], S.DELIVERED, units=minutes)
    assert used(gym_a, "VOICE") == after
    assert snapshot("m1")["units"] == minutes
    with session_scope() as session:  # a second report settles nothing
        assert not transition(session, "m1", [S.SENT, S.AMBIGUOUS], S.DELIVERED, units=minutes + 1)
    assert used(gym_a, "VOICE") == after


@pytest.mark.parametrize("target", [S.FAILED, S.EXPIRED])
def test_a_refunded_call_gives_back_what_it_reserved(tenant: Tenant, gym_a: int, target: S) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT, channel="VOICE")
    with session_scope() as session:
        assert transition(session, "m1", [S.SENT], target)
    assert used(gym_a, "VOICE") == 0


@pytest.mark.parametrize(("source", "target", "many"), [
    (S.SENT, S.FAILED, False), (S.AMBIGUOUS, S.EXPIRED, False), (S.SCHEDULED, S.REFUSED, False),
    (S.QUEUED, S.REFUSED, True), (S.QUEUED, S.FAILED, True)])
def test_units_go_back_to_the_closed_period_they_were_charged_to(tenant: Tenant, gym_a: int, source: S, target: S,
                                                                 many: bool) -> None:
    old = dt.date(2020, 1, 1)
    with session_scope() as session:
        session.add(UsagePeriod(merchant_id=gym_a, channel="SMS", period_start=old, period_end=dt.date(2020, 2, 1),
                                unit_limit=10, credits=0, used=RESERVED))
        session.get(Balance, (gym_a, "SMS")).used = RESERVED  # type: ignore[union-attr]
    charged_message(tenant, gym_a, "m1", source, period=old)
    with session_scope() as session:
        if many:
            assert transition_many(session, MESSAGE_COLUMNS.id == "m1", [source], target, error_code="E900") == ["m1"]
        else:
            assert transition(session, "m1", [source], target, error_code="E900")
    with session_scope() as session:
        closed = session.get(UsagePeriod, (gym_a, "SMS", old))
        assert closed is not None and closed.used == 0
    assert used(gym_a) == RESERVED  # the current period keeps what it used


def test_refunds_of_a_set_go_to_each_message_s_merchant_channel_and_period(tenant: Tenant, gym_a: int,
                                                                            gym_b: int) -> None:
    charged_message(tenant, gym_a, "m1", S.QUEUED)
    charged_message(tenant, gym_a, "m2", S.QUEUED, channel="EMAIL")
    charged_message(tenant, gym_b, "m3", S.QUEUED)
    charged_message(tenant, gym_b, "m4", S.QUEUED)
    with session_scope() as session:
        assert len(transition_many(session, MESSAGE_COLUMNS.request_id == "r1", [S.QUEUED], S.REFUSED,
                                   error_code="E900")) == 4
    assert (used(gym_a), used(gym_a, "EMAIL"), used(gym_b)) == (0, 0, 0)


@pytest.mark.parametrize("target", [S.DELIVERED, S.FAILED])
def test_a_message_without_a_merchant_moves_without_balance_or_callback(tenant: Tenant, target: S) -> None:
    charged_message(tenant, None, "m1", S.SENT)
    with session_scope() as session:
        assert transition(session, "m1", [S.SENT], target)
    assert snapshot("m1")["freshness"] == "FINAL"
    assert callbacks("m1") == []


def test_a_final_message_without_a_dlr_url_queues_no_callback_but_is_refunded(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT, dlr=False)
    charged_message(tenant, gym_a, "m2", S.QUEUED, dlr=False)
    with session_scope() as session:
        assert transition(session, "m1", [S.SENT], S.FAILED)
        assert transition_many(session, MESSAGE_COLUMNS.id == "m2", [S.QUEUED], S.REFUSED, error_code="E900") == ["m2"]
    assert callbacks("m1") == callbacks("m2") == []
    assert used(gym_a) == 0


# -- what a move writes ------------------------------------------------------------------------------------------


def test_a_move_writes_every_column_it_names_and_only_those(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.DISPATCHING)
    charged_message(tenant, gym_a, "m2", S.DISPATCHING)
    later = utcnow() + dt.timedelta(minutes=5)
    with session_scope() as session:
        assert transition(session, "m1", [S.DISPATCHING], S.SENT, provider="sim", provider_ref="ref-1",
                          provider_priced=True, cost_micros=MESSAGE_COLUMNS.cost_micros + 1, error_code="E1",
                          error_detail="why", dispatch_attempts=MESSAGE_COLUMNS.dispatch_attempts + 4,
                          reconcile_attempts=2, reconcile_after=later)
        assert transition(session, "m2", [S.DISPATCHING], S.SENT)
    with session_scope() as session:
        m1, m2 = session.get(Message, "m1"), session.get(Message, "m2")
        assert m1 is not None and m2 is not None
        assert (m1.provider, m1.provider_ref, m1.provider_priced, m1.cost_micros, m1.error_code, m1.error_detail,
                m1.dispatch_attempts, m1.reconcile_attempts, m1.reconcile_after) == (
            "sim", "ref-1", True, COST + 1, "E1", "why", 4, 2, later)
        assert (m2.provider, m2.provider_ref, m2.provider_priced, m2.cost_micros, m2.error_code, m2.error_detail,
                m2.dispatch_attempts, m2.reconcile_attempts, m2.reconcile_after) == (
            None, None, False, COST, None, None, 0, 0, None)


def test_a_set_move_from_several_states_keeps_its_detail_and_time(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT)
    charged_message(tenant, gym_a, "m2", S.AMBIGUOUS)
    with session_scope() as session:
        moved = transition_many(session, MESSAGE_COLUMNS.request_id == "r1", [S.SENT, S.AMBIGUOUS], S.EXPIRED,
                                detail={"why": "too old"}, error_code="E817")
    assert sorted(moved) == ["m1", "m2"]
    with session_scope() as session:
        rows = session.execute(select(MessageEvent.message_id, MessageEvent.from_state, MessageEvent.to_state,
                                      MessageEvent.detail, MessageEvent.at).order_by(MessageEvent.message_id)).all()
    assert [tuple(r[:4]) for r in rows] == [("m1", None, "EXPIRED", {"why": "too old"}),
                                            ("m2", None, "EXPIRED", {"why": "too old"})]
    assert [r[4] for r in rows] == [snapshot("m1")["updated_at"], snapshot("m2")["updated_at"]]
    assert used(gym_a) == 0 and snapshot("m1")["error_code"] == "E817"


def test_a_message_final_from_birth_gets_the_same_callback(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.REFUSED)
    at = utcnow()
    with session_scope() as session:
        queue_final_callback(session, "m1", gym_a, "r1", S.REFUSED, URL + "/" + "a" * 2100, at, error_code="E700",
                             units=0, options=OPTIONS)
    with session_scope() as session:
        row = session.scalars(select(OutboundCallback)).one()
        assert (row.message_id, row.merchant_id, row.event_status, row.url, row.state, row.attempts,
                row.next_attempt_at, row.body) == (
            "m1", gym_a, "REFUSED", (URL + "/" + "a" * 2100)[:2000], "PENDING", 0, at,
            callback_body("m1", "r1", S.REFUSED, at, "E700", 0, OPTIONS))
        assert len(row.id) == 36


def test_a_set_move_settles_messages_with_and_without_a_merchant(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, None, "m1", S.QUEUED)
    charged_message(tenant, gym_a, "m2", S.QUEUED)
    charged_message(tenant, None, "m3", S.QUEUED)
    charged_message(tenant, gym_a, "m4", S.QUEUED)
    with session_scope() as session:
        assert len(transition_many(session, MESSAGE_COLUMNS.request_id == "r1", [S.QUEUED], S.FAILED)) == 4
    assert used(gym_a) == 0
    assert [len(callbacks(mid)) for mid in ("m1", "m2", "m3", "m4")] == [0, 1, 0, 1]


def test_a_set_move_cannot_change_what_a_text_was_charged(tenant: Tenant, gym_a: int) -> None:
    charged_message(tenant, gym_a, "m1", S.SENT)
    before = snapshot("m1")
    with session_scope() as session, pytest.raises(InvalidTransition) as refused:
        transition_many(session, MESSAGE_COLUMNS.id == "m1", [S.SENT], S.DELIVERED, units=1)
    assert str(refused.value) == "only a call's units change when it settles (its real minutes)"
    assert_untouched("m1", before, gym_a, RESERVED)


def test_a_call_of_a_closed_period_settles_its_minutes_there(tenant: Tenant, gym_a: int) -> None:
    old = dt.date(2020, 1, 1)
    with session_scope() as session:
        session.add(UsagePeriod(merchant_id=gym_a, channel="VOICE", period_start=old, period_end=dt.date(2020, 2, 1),
                                unit_limit=10, credits=0, used=RESERVED))
        session.get(Balance, (gym_a, "VOICE")).used = RESERVED  # type: ignore[union-attr]
    charged_message(tenant, gym_a, "m1", S.SENT, channel="VOICE", period=old)
    with session_scope() as session:
        assert transition(session, "m1", [S.SENT], S.DELIVERED, units=1)
    with session_scope() as session:
        closed = session.get(UsagePeriod, (gym_a, "VOICE", old))
        assert closed is not None and closed.used == 1
    assert used(gym_a, "VOICE") == RESERVED


@pytest.mark.parametrize("target", [S.FAILED, S.REFUSED])
def test_a_single_unit_goes_back_too(tenant: Tenant, gym_a: int, target: S) -> None:
    charged_message(tenant, gym_a, "m1", S.QUEUED, units=1)
    assert used(gym_a) == 1
    with session_scope() as session:
        assert transition(session, "m1", [S.QUEUED], target, error_code="E900")
    assert used(gym_a) == 0
