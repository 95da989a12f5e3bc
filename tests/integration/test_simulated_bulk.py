"""The simulated provider's bulk call decides each message as a single call would, writing its ledger once."""

from __future__ import annotations

import uuid
from typing import TypedDict

import pytest

from providers.base import OutboundMessage, SendOutcome
from schema.states import Channel


class Rates(TypedDict, total=False):
    """The SimulatorConfig rates a case sets."""

    reject_rate: float
    unavailable_rate: float
    lost_rate: float


def _messages(count: int) -> list[OutboundMessage]:
    return [OutboundMessage(message_id=str(uuid.uuid4()), channel=Channel.SMS, message_type="MKT",
                            recipient=f"+1813555{1000 + i}", body="Sale", sender="GYMA") for i in range(count)]


@pytest.mark.parametrize("rates", [{}, {"reject_rate": 0.3, "unavailable_rate": 0.2, "lost_rate": 0.1}])
def test_a_bulk_call_answers_and_records_each_message_as_single_calls_would(hexavox_env: dict[str, str],
                                                                            rates: Rates) -> None:
    from providers.simulated import SimulatedProvider, SimulatorConfig, ledger_calls

    url = hexavox_env["HEXAVOX_DATABASE_URL"]
    one = SimulatedProvider("one-by-one", SimulatorConfig(ledger_url=url, seed=7, **rates))
    bulk = SimulatedProvider("bulk", SimulatorConfig(ledger_url=url, seed=7, **rates))
    messages = _messages(40)
    # When the same messages go one by one to one instance and in one bulk call to another (same seed)
    single = [one.send(m) for m in messages]
    many = bulk.send_many(messages)
    # Then every message gets the same outcome and provider code, and the same reference when accepted
    assert [(r.outcome, r.provider_code) for r in many] == [(r.outcome, r.provider_code) for r in single]
    assert [r.provider_ref for r in many] == [bulk.reference(m.message_id) if r.outcome is SendOutcome.ACCEPTED
                                              else None for m, r in zip(messages, many, strict=True)]
    # And the ledger holds one call per message for each, with the same outcomes
    calls = {name: [(c["message_id"], c["outcome"]) for c in ledger_calls(url) if c["provider"] == name]
             for name in ("one-by-one", "bulk")}
    assert calls["bulk"] == calls["one-by-one"] and len(calls["bulk"]) == 40
    # And a second bulk call counts as the next attempt: an accepted message is replayed with the same reference
    again = bulk.send_many(messages)
    replays = [c for c in ledger_calls(url) if c["provider"] == "bulk" and c["replay"]]
    accepted_first = {m.message_id for m, r in zip(messages, many, strict=True) if r.outcome is SendOutcome.ACCEPTED}
    assert {c["message_id"] for c in replays} <= accepted_first
    assert all(r.provider_ref == bulk.reference(m.message_id) for m, r in zip(messages, again, strict=True)
               if r.outcome is SendOutcome.ACCEPTED)
