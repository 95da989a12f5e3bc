"""Inbound delivery reports (docs/reliability.md R12): duplicated, late and out-of-order reports never move a terminal
state, FAILED gives units back exactly once, voice settles on real minutes, and a STOP reply opts the number out.

Messages are created through the real intake and taken to their starting state by the real dispatch (simulated
provider) or by :func:`transition`, the same function dispatch uses.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from providers.base import DeliveryEvent, DeliveryStatus
from schema.models import Balance, Consent, Message, MessageEvent, OutboundCallback
from schema.states import TERMINAL_STATES, MessageState
from worker.db import session_scope
from worker.policy.delivery_reports import apply_batch, apply_event, events_from_json, events_to_json
from worker.policy.transitions import transition

from factories import Tenant, make_merchant, make_tenant, opt, sms

SMS_TASK = "hexavox.sms.send.v1"
VOICE_TASK = "hexavox.voice.send.v1"
NUMBER = "+18135551234"
DLR_URL = "https://merchant.example/dlr"
_bodies = itertools.count(1)
S = MessageState
#: Figures of the replay property test, printed at its end (run with -s to see them).
FIGURES: Counter[str] = Counter()


# --- helpers -----------------------------------------------------------------------------------------------------


def send(tenant: Tenant, task: str = SMS_TASK, **fields: Any) -> dict[str, Any]:
    """One message through the real intake; its answer row (messageId, status, units or error)."""
    from worker.runner import run_send_job

    payload = sms(tenant, body=f"Class moved to 6 pm ({next(_bodies)})", **fields) if task == SMS_TASK else {
        "auth": tenant.auth, "merchantId": "gym-a", "to": NUMBER, "text": "Your class starts in one hour", **fields}
    row: dict[str, Any] = run_send_job(task, payload, str(uuid.uuid4())).result["messages"][0]
    return row


def queued(tenant: Tenant, **fields: Any) -> str:
    row = send(tenant, **fields)
    assert row["status"] == "QUEUED", row
    return str(row["messageId"])


def dispatch(message_id: str) -> None:
    """The real dispatch through the simulated provider: QUEUED -> DISPATCHING -> SENT with its provider ref."""
    from worker.policy.dispatch import DispatchStep, dispatch_message
    from worker.sending import provider_sender
    from worker.settings import get_settings

    assert dispatch_message(message_id, get_settings(), provider_sender(get_settings())) == DispatchStep.SENT


def move(message_id: str, *path: MessageState, **fields: Any) -> None:
    """Walk ``path`` with the transitions dispatch makes; ``fields`` go with the last step."""
    states = [MessageState(message(message_id).status), *path]
    with session_scope() as session:
        for i, (src, dst) in enumerate(itertools.pairwise(states)):
            assert transition(session, message_id, [src], dst, **(fields if i == len(path) - 1 else {}))


def message(message_id: str) -> Message:
    with session_scope() as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


def report(status: DeliveryStatus, *, ref: str | None = None, mid: str | None = None, provider: str = "simulated",
           **kw: Any) -> DeliveryEvent:
    return DeliveryEvent(provider=provider, status=status, provider_ref=ref, message_id=mid, **kw)


def apply(event: DeliveryEvent) -> str:
    with session_scope() as session:
        return apply_event(session, event)


def used(merchant_id: int, channel: str = "SMS") -> int:
    with session_scope() as session:
        value = session.scalar(select(Balance.used).where(Balance.merchant_id == merchant_id,
                                                          Balance.channel == channel))
        assert value is not None
        return int(value)


def count(model: Any, message_id: str, **where: Any) -> int:
    with session_scope() as session:
        stmt = select(func.count()).select_from(model).where(model.message_id == message_id)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return int(session.scalar(stmt) or 0)


# --- state rules ----------------------------------------------------------------------------------------------------


def test_delivered_then_late_accepted_stays_delivered(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    mid = queued(tenant, dlrUrl=DLR_URL)
    dispatch(mid)
    ref = message(mid).provider_ref
    assert ref and message(mid).status == "SENT"

    assert apply(report(DeliveryStatus.DELIVERED, ref=ref)) == "delivered"
    assert apply(report(DeliveryStatus.ACCEPTED, ref=ref, mid=mid)) == "unchanged"  # the late SENT
    assert apply(report(DeliveryStatus.FAILED, ref=ref)) == "unchanged"  # a contradicting late report
    final = message(mid)
    assert (final.status, final.freshness, final.error_code) == ("DELIVERED", "FINAL", None)
    assert count(OutboundCallback, mid) == 1  # one callback to the merchant per final state


def test_duplicate_reports_are_harmless(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    mid = queued(tenant, dlrUrl=DLR_URL)
    dispatch(mid)
    ref, before = message(mid).provider_ref, used(merchant_id)

    outcomes = [apply(report(DeliveryStatus.DELIVERED, ref=ref, event_id="e1")) for _ in range(4)]
    assert outcomes == ["delivered", "unchanged", "unchanged", "unchanged"]
    assert count(MessageEvent, mid, to_state="DELIVERED") == 1
    assert count(OutboundCallback, mid) == 1
    assert used(merchant_id) == before  # a delivered message keeps its charge


def test_failed_report_replayed_five_times_releases_units_once(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    other = queued(tenant)  # keeps units reserved, so a double release would show in the balance
    mid = queued(tenant, dlrUrl=DLR_URL)
    dispatch(mid)
    ref, units, before = message(mid).provider_ref, message(mid).units, used(merchant_id)
    assert units >= 1 and before >= 2 * units

    outcomes = [apply(report(DeliveryStatus.FAILED, ref=ref, provider_code="SIM-40")) for _ in range(5)]
    assert outcomes == ["failed"] + ["unchanged"] * 4
    failed = message(mid)
    assert (failed.status, failed.error_code, failed.freshness) == ("FAILED", "E815", "FINAL")
    assert used(merchant_id) == before - units
    assert message(other).status == "QUEUED"
    assert count(OutboundCallback, mid) == 1


def test_report_that_beats_our_sent_record(hexavox_env: dict[str, str]) -> None:
    """The provider's DELIVERED arrives while the dispatch worker has not yet recorded SENT."""
    tenant = make_tenant()
    make_merchant(tenant)
    mid = queued(tenant)
    move(mid, S.DISPATCHING)
    assert apply(report(DeliveryStatus.DELIVERED, ref="sim-early", mid=mid)) == "delivered"
    done = message(mid)
    assert (done.status, done.provider, done.provider_ref) == ("DELIVERED", "simulated", "sim-early")
    with session_scope() as session:  # dispatch's own record comes second and changes nothing
        assert not transition(session, mid, [S.DISPATCHING], S.SENT, provider="simulated", provider_ref="sim-early")
    assert apply(report(DeliveryStatus.ACCEPTED, ref="sim-early")) == "unchanged"


def test_accepted_settles_ambiguous_and_keeps_existing_refs(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    ambiguous, sent = queued(tenant), queued(tenant)
    move(ambiguous, S.DISPATCHING, S.AMBIGUOUS, provider="simulated")
    move(sent, S.DISPATCHING, S.SENT, provider="simulated", provider_ref="sim-kept")

    assert apply(report(DeliveryStatus.ACCEPTED, ref="sim-new", mid=ambiguous)) == "sent"
    assert (message(ambiguous).status, message(ambiguous).provider_ref) == ("SENT", "sim-new")
    assert apply(report(DeliveryStatus.ACCEPTED, ref="sim-kept")) == "unchanged"  # SENT is not a source
    assert apply(report(DeliveryStatus.DELIVERED, ref="sim-other", mid=sent)) == "delivered"
    assert message(sent).provider_ref == "sim-kept"  # a recorded reference is never overwritten


def test_unknown_status_and_unknown_messages_change_nothing(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    mid = queued(tenant)
    dispatch(mid)
    ref = message(mid).provider_ref
    assert apply(report(DeliveryStatus.UNKNOWN, ref=ref, provider_code="WEIRD")) == "ignored"
    assert apply(report(DeliveryStatus.NOT_FOUND, ref=ref)) == "ignored"
    assert apply(report(DeliveryStatus.DELIVERED, ref="sim-nobody")) == "unknown-message"
    assert apply(report(DeliveryStatus.DELIVERED, mid=str(uuid.uuid4()))) == "unknown-message"
    # Another provider cannot settle a message it does not have, even naming our id
    assert apply(report(DeliveryStatus.DELIVERED, mid=mid, provider="hexa-sms")) == "unknown-message"
    assert apply(report(DeliveryStatus.DELIVERED, ref=ref, provider="hexa-sms")) == "unknown-message"
    assert message(mid).status == "SENT"


def test_queued_message_is_not_settled_by_a_report(hexavox_env: dict[str, str]) -> None:
    """QUEUED means reconcile proved the provider never got it (or it was not sent yet): a report is stale."""
    tenant = make_tenant()
    make_merchant(tenant)
    mid = queued(tenant)
    assert apply(report(DeliveryStatus.DELIVERED, mid=mid)) == "unchanged"
    assert message(mid).status == "QUEUED"


def test_voice_settles_on_real_minutes_once(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_id = make_merchant(tenant, voice=100)
    long_call, short_call = send(tenant, VOICE_TASK), send(tenant, VOICE_TASK, to="+18135551299")
    for row in (long_call, short_call):
        assert row["status"] == "QUEUED" and row["units"] == 1, row
        move(row["messageId"], S.DISPATCHING, S.SENT, provider="simulated", provider_ref=f"sim-{row['messageId']}")
    assert used(merchant_id, "VOICE") == 2

    long_ref, short_ref = f"sim-{long_call['messageId']}", f"sim-{short_call['messageId']}"
    for _ in range(3):  # replays settle nothing more
        apply(report(DeliveryStatus.DELIVERED, ref=long_ref, duration_seconds=150))
    assert message(long_call["messageId"]).units == 3
    assert used(merchant_id, "VOICE") == 4  # 2 more minutes charged

    apply(report(DeliveryStatus.DELIVERED, ref=short_ref, duration_seconds=0))
    assert message(short_call["messageId"]).units == 0
    assert used(merchant_id, "VOICE") == 3  # the unused estimated minute went back


def test_voice_overrun_beyond_the_balance_is_recorded_not_overspent(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_id = make_merchant(tenant, voice=2)
    row = send(tenant, VOICE_TASK)
    move(row["messageId"], S.DISPATCHING, S.SENT, provider="simulated", provider_ref="sim-long")
    assert apply(report(DeliveryStatus.DELIVERED, ref="sim-long", duration_seconds=600)) == "delivered"
    assert message(row["messageId"]).units == 10  # what the provider bills
    assert used(merchant_id, "VOICE") == 1  # the balance never goes past its limit


# --- replies ----------------------------------------------------------------------------------------------------


def consent_of(merchant_id: int, contact: str = NUMBER) -> tuple[str, str] | None:
    with session_scope() as session:
        found = session.scalars(select(Consent).where(Consent.merchant_id == merchant_id,
                                                      Consent.channel == "SMS", Consent.contact == contact)).first()
        return (found.status, found.source) if found else None


def reply(text: str, sender: str = NUMBER, **kw: Any) -> DeliveryEvent:
    return report(DeliveryStatus.UNKNOWN, reply_from=sender, reply_text=text, **kw)


OUR_NUMBER = "+18135550000"  #: a numeric sender id, the number replies come back to


@pytest.fixture
def signed_provider(hexavox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulated provider with a callback secret: what its endpoint passes on was signed (authenticated)."""
    from providers.registry import reset_providers
    from worker.settings import reset_settings

    monkeypatch.setenv("HEXAVOX_PROVIDERS", json.dumps({"simulated": {"driver": "simulated",
                                                                      "callback_secret": "s3cret"}}))
    reset_settings()
    reset_providers()


def test_stop_reply_opts_out_and_next_marketing_send_is_refused(signed_provider: None) -> None:
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    opt(tenant, "gym-a", "SMS", NUMBER, "OPT_IN")
    mid = queued(tenant, type="MKT", sender=OUR_NUMBER)
    dispatch(mid)

    assert apply(reply("Thanks, see you there", reply_to=OUR_NUMBER)) == "ignored"
    assert consent_of(merchant_id) == ("OPT_IN", "test")
    assert apply(reply("  stop. please", reply_to="18135550000")) == "opted-out"
    assert consent_of(merchant_id) == ("OPT_OUT", "sms-reply")
    assert apply(reply("STOP", reply_to=OUR_NUMBER)) == "opted-out"  # a replayed STOP is harmless

    refused = send(tenant, type="MKT", sender=OUR_NUMBER)
    assert refused["status"] == "REFUSED" and refused["error"]["code"] == "E805", refused


def test_stop_reply_is_scoped_to_the_merchants_that_sent_from_the_number_it_replied_to(
        signed_provider: None) -> None:
    """With a message reference only its merchant; else only those that texted them from the replied-to number;
    a reply naming neither opts nobody out (it once opted the number out for every tenant's merchants)."""
    tenant, other_tenant = make_tenant(), make_tenant("globex")
    gym_a, gym_b = make_merchant(tenant, "gym-a"), make_merchant(tenant, "gym-b")
    gym_x = make_merchant(other_tenant, "gym-x")
    a_msg = queued(tenant)
    for merchant, who in (("gym-b", tenant), ("gym-x", other_tenant)):
        dispatch(queued(who, merchantId=merchant, sender=OUR_NUMBER if merchant == "gym-b" else "+18135559999"))
    dispatch(a_msg)

    assert apply(reply("UNSUBSCRIBE", sender="18135551234", ref=message(a_msg).provider_ref)) == "opted-out"
    assert consent_of(gym_a) == ("OPT_OUT", "sms-reply") and consent_of(gym_b) is None

    assert apply(reply("quit", sender="+1 813 555 1234")) == "unknown-contact"  # no reference, no number
    assert consent_of(gym_b) is None and consent_of(gym_x) is None

    assert apply(reply("quit", sender="+1 813 555 1234", reply_to=OUR_NUMBER)) == "opted-out"
    assert consent_of(gym_b) == ("OPT_OUT", "sms-reply") and consent_of(gym_x) is None  # other tenant untouched
    assert apply(reply("STOP", sender="+18135550001", reply_to=OUR_NUMBER)) == "unknown-contact"
    assert apply(reply("STOP", sender="not a number", reply_to=OUR_NUMBER)) == "unknown-contact"


def test_an_unauthenticated_stop_opts_nobody_out(hexavox_env: dict[str, str]) -> None:
    """The default simulated provider has no secret: its endpoint accepts unsigned posts, so a STOP is ignored."""
    tenant = make_tenant()
    merchant_id = make_merchant(tenant)
    mid = queued(tenant, sender=OUR_NUMBER)
    dispatch(mid)
    assert apply(reply("STOP", ref=message(mid).provider_ref, reply_to=OUR_NUMBER)) == "unauthenticated"
    assert consent_of(merchant_id) is None


# --- carrying events through the broker ------------------------------------------------------------------------------


def test_events_round_trip_through_json(hexavox_env: dict[str, str]) -> None:
    at = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    events = [report(DeliveryStatus.DELIVERED, ref="r1", mid="m1", event_id="e1", occurred_at=at,
                     provider_code="0", duration_seconds=61, raw={"at": at, "blob": b"\xff", "n": [1, 2]}),
              reply("STOP", event_id="e2")]
    data = json.loads(json.dumps(events_to_json(events)))  # what the JSON-only broker does
    back = events_from_json(data)
    assert [e.status for e in back] == [DeliveryStatus.DELIVERED, DeliveryStatus.UNKNOWN]
    assert back[0].occurred_at == at and back[0].duration_seconds == 61 and back[0].raw["at"] == at.isoformat()
    assert back[1].reply_text == "STOP" and back[1].reply_from == NUMBER
    assert back[0] == DeliveryEvent(**{**vars(events[0]), "raw": back[0].raw})
    assert events_from_json([{"status": "BOGUS", "durationSeconds": "9"}, "junk"], "simulated") == [
        DeliveryEvent(provider="simulated", status=DeliveryStatus.UNKNOWN, raw=None)]


def test_apply_batch_counts_and_pins_the_provider(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant)
    mid = queued(tenant)
    dispatch(mid)
    ref = message(mid).provider_ref
    events = events_to_json([report(DeliveryStatus.DELIVERED, ref=ref, provider="hexa-sms"),  # claims another
                             report(DeliveryStatus.DELIVERED, ref=ref), report(DeliveryStatus.ACCEPTED, ref=ref),
                             report(DeliveryStatus.UNKNOWN, ref=ref)])
    assert apply_batch("simulated", events) == {"delivered": 1, "unchanged": 2, "ignored": 1}
    assert message(mid).status == "DELIVERED"


# --- R12 property: shuffled, duplicated streams ---------------------------------------------------------------------

STARTS = (S.SENT, S.DISPATCHING, S.AMBIGUOUS)
FINALS = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, None)


@dataclass(frozen=True)
class Plan:
    """Per message: its starting state and its final report (None: no final report in the stream)."""

    starts: tuple[MessageState, ...]
    finals: tuple[DeliveryStatus | None, ...]
    #: (message index, status, identified by: "ref" | "id" | "both"), already duplicated and shuffled.
    stream: tuple[tuple[int, DeliveryStatus, str], ...]


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 4))
    starts = tuple(draw(st.sampled_from(STARTS)) for _ in range(n))
    finals = tuple(draw(st.sampled_from(FINALS)) for _ in range(n))
    reports: list[tuple[int, DeliveryStatus, str]] = []
    for i, final in enumerate(finals):
        kinds = [DeliveryStatus.ACCEPTED] * draw(st.integers(0, 3)) + [DeliveryStatus.UNKNOWN] * draw(
            st.integers(0, 1)) + ([final] if final else [])
        # only a message whose reference we recorded at SENT can be found by the reference alone
        idents = ["ref", "id", "both"] if starts[i] == S.SENT else ["id", "both"]
        for kind in kinds:
            for _ in range(draw(st.integers(1, 3))):  # duplicates
                reports.append((i, kind, draw(st.sampled_from(idents))))
    return Plan(starts, finals, tuple(draw(st.permutations(reports))))


def expected_state(start: MessageState, final: DeliveryStatus | None, stream: list[DeliveryStatus]) -> MessageState:
    """The strongest report wins: a final one, else ACCEPTED for a message whose outcome was still open."""
    if final is not None:
        return MessageState(final.value)
    if DeliveryStatus.ACCEPTED in stream and start in (S.DISPATCHING, S.AMBIGUOUS):
        return S.SENT
    return start


def start_message(tenant: Tenant, start: MessageState) -> str:
    mid = queued(tenant, dlrUrl=DLR_URL)
    if start == S.SENT:
        move(mid, S.DISPATCHING, S.SENT, provider="simulated", provider_ref=f"sim-{mid}")
    elif start == S.AMBIGUOUS:
        move(mid, S.DISPATCHING, S.AMBIGUOUS, provider="simulated")
    else:
        move(mid, S.DISPATCHING)
    return mid


def states(ids: list[str]) -> dict[str, str]:
    with session_scope() as session:
        return dict(session.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).tuples().all())


def replay(tenant: Tenant, merchant_id: int, plan: Plan) -> None:
    ids = [start_message(tenant, start) for start in plan.starts]
    before = used(merchant_id)
    seen = states(ids)
    for index, status, ident in plan.stream:
        mid = ids[index]
        apply(report(status, ref=f"sim-{mid}" if ident != "id" else None, mid=mid if ident != "ref" else None))
        FIGURES["events applied"] += 1
        now = states(ids)
        FIGURES["terminal regressions"] += sum(1 for m in ids if S(seen[m]) in TERMINAL_STATES and now[m] != seen[m])
        seen = now
    FIGURES["examples"] += 1
    FIGURES["messages"] += len(ids)
    for i, mid in enumerate(ids):
        want = expected_state(plan.starts[i], plan.finals[i], [s for j, s, _ in plan.stream if j == i])
        FIGURES["wrong final states"] += seen[mid] != want.value
        finals = count(MessageEvent, mid, to_state=want.value) if want in TERMINAL_STATES else 0
        FIGURES["terminal transitions beyond one"] += max(0, finals - 1)
        FIGURES["callbacks per final state != 1"] += (count(OutboundCallback, mid) != (1 if finals else 0))
    released = sum(message(mid).units for i, mid in enumerate(ids) if plan.finals[i] == DeliveryStatus.FAILED)
    FIGURES["unit balance errors"] += used(merchant_id) != before - released


def test_shuffled_duplicated_report_streams_never_regress(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    merchant_id = make_merchant(tenant, sms=100_000)
    FIGURES.clear()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(plan=plans())
    def run(plan: Plan) -> None:
        replay(tenant, merchant_id, plan)

    run()
    print("\nR12 replay figures:", dict(FIGURES))
    assert FIGURES["examples"] >= 20 and FIGURES["events applied"] > 100
    for figure in ("terminal regressions", "wrong final states", "terminal transitions beyond one",
                   "callbacks per final state != 1", "unit balance errors"):
        assert FIGURES[figure] == 0, (figure, dict(FIGURES))
