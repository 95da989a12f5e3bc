"""Consent on a real database: OPT_OUT blocks every type, marketing needs OPT_IN, and a consent row only
speaks for its own merchant, channel and contact."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from schema.models import Consent
from schema.states import ConsentStatus
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.consent import is_marketing, require_consent, set_consent

TO = "+18135551234"


def consent(merchant_id: int, status: str, channel: str = "SMS", contact: str = TO, source: str = "test") -> None:
    with session_scope() as session:
        set_consent(session, merchant_id, channel, contact, ConsentStatus(status), source)


def check(merchant_id: int, message_type: str, channel: str = "SMS", contact: str = TO) -> None:
    with session_scope() as session:
        require_consent(session, merchant_id, channel, contact, message_type)


@pytest.mark.parametrize(("kind", "marketing"), (("MKT", True), ("mkt", True), ("MARKETING", True),
                                                 ("marketing", True), ("TXN", False), ("OTP", False),
                                                 ("TRANSACTIONAL", False), ("REMINDER", False)))
def test_marketing_types(kind: str, marketing: bool) -> None:
    assert is_marketing(kind) is marketing


@pytest.mark.parametrize("kind", ("OTP", "TXN", "MKT", "TRANSACTIONAL", "MARKETING"))
def test_an_opt_out_blocks_every_type(gym_a: int, kind: str) -> None:
    consent(gym_a, "OPT_OUT", channel="VOICE")
    with pytest.raises(Refusal) as caught:
        check(gym_a, kind, channel="VOICE")
    assert caught.value.as_dict() == {"code": Code.CONSENT_OPTED_OUT.value, "name": "CONSENT_OPTED_OUT",
                                      "detail": "recipient opted out of VOICE", "field": "to"}


@pytest.mark.parametrize("kind", ("MKT", "MARKETING"))
def test_marketing_without_opt_in_is_refused(gym_a: int, kind: str) -> None:
    with pytest.raises(Refusal) as caught:
        check(gym_a, kind, channel="EMAIL", contact="ana@example.com")
    assert caught.value.as_dict() == {"code": Code.CONSENT_REQUIRED.value, "name": "CONSENT_REQUIRED",
                                      "detail": "marketing EMAIL needs OPT_IN", "field": "to"}


def test_marketing_with_opt_in_and_transactional_without_consent_go(gym_a: int) -> None:
    consent(gym_a, "OPT_IN")
    check(gym_a, "MKT")
    check(gym_a, "TXN", contact="+12015550123")
    check(gym_a, "OTP", contact="+12015550123")


def test_another_merchants_opt_in_does_not_count(gym_a: int, gym_b: int) -> None:
    consent(gym_b, "OPT_IN")
    with pytest.raises(Refusal) as caught:
        check(gym_a, "MKT")
    assert caught.value.code is Code.CONSENT_REQUIRED


def test_an_opt_in_on_another_channel_or_contact_does_not_count(gym_a: int) -> None:
    consent(gym_a, "OPT_IN", channel="VOICE")
    consent(gym_a, "OPT_IN", contact="+12015550123")
    with pytest.raises(Refusal) as caught:
        check(gym_a, "MKT")
    assert caught.value.code is Code.CONSENT_REQUIRED


def test_another_merchants_opt_out_does_not_block(gym_a: int, gym_b: int) -> None:
    consent(gym_b, "OPT_OUT")
    consent(gym_a, "OPT_OUT", channel="VOICE")
    consent(gym_a, "OPT_OUT", contact="+12015550123")
    check(gym_a, "TXN")


def test_the_last_consent_wins_and_stays_one_row(gym_a: int) -> None:
    consent(gym_a, "OPT_IN", source="signup")
    consent(gym_a, "OPT_OUT", source="STOP reply")
    with pytest.raises(Refusal) as caught:
        check(gym_a, "TXN")
    assert caught.value.code is Code.CONSENT_OPTED_OUT
    with session_scope() as session:
        rows = session.scalars(select(Consent)).all()
        assert [(c.merchant_id, c.channel, c.contact, c.status, c.source) for c in rows] == [
            (gym_a, "SMS", TO, "OPT_OUT", "STOP reply")]
    consent(gym_a, "OPT_IN", source="web form")
    check(gym_a, "MKT")
