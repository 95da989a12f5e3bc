"""The 10-second duplicate guard on a real database: what the content digest covers (the merchant too),
and how the window is claimed, refused and re-claimed once it has expired by database time."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from schema.models import DuplicateGuard
from worker.catalogue import Code
from worker.db import session_scope
from worker.errors import Refusal
from worker.policy.dbtime import db_now_ms
from worker.policy.duplicates import claim_window, content_digest

BASE = (7, "SMS", "+18135551234", "", "Class moved to 6 pm")


def test_the_digest_is_sha256_of_the_parts_joined_by_unit_separators() -> None:
    expected = hashlib.sha256(b"7\x1fSMS\x1f+18135551234\x1f\x1fClass moved to 6 pm").hexdigest()
    assert content_digest(*BASE) == expected


@pytest.mark.parametrize("position", range(5))
def test_every_part_of_the_content_changes_the_digest(position: int) -> None:
    changed = list(BASE)
    changed[position] = 8 if position == 0 else str(changed[position]) + "x"
    assert content_digest(*changed) != content_digest(*BASE)  # type: ignore[arg-type]


def test_moving_text_between_parts_changes_the_digest() -> None:
    moved = content_digest(7, "SMS", "+1813555123", "", "4Class")
    assert moved != content_digest(7, "SMS", "+18135551234", "", "Class")


def claim(digest: str, message_id: str, window: int = 10) -> None:
    with session_scope() as session:
        claim_window(session, digest, message_id, window)


def guard(digest: str) -> tuple[int, str, int]:
    """(expires_at_ms, message_id, database now) of ``digest``'s row."""
    with session_scope() as session:
        row = session.scalars(select(DuplicateGuard).where(DuplicateGuard.digest == digest)).one()
        return row.expires_at_ms, row.message_id, db_now_ms(session)


def test_a_second_claim_within_the_window_is_refused_with_e807(policy_db: str) -> None:
    digest = content_digest(*BASE)
    claim(digest, "m1")
    expires, owner, now = guard(digest)
    assert owner == "m1"
    assert now + 8_000 < expires <= now + 10_000  # ten seconds from the claim, by database time
    with pytest.raises(Refusal) as caught:
        claim(digest, "m2")
    assert caught.value.as_dict() == {"code": Code.DUPLICATE_WITHIN_WINDOW.value, "name": "DUPLICATE_WITHIN_WINDOW",
                                      "detail": "same content to this recipient within 10s", "field": "to"}
    assert guard(digest)[:2] == (expires, "m1")


def test_the_window_length_is_the_one_asked_for(policy_db: str) -> None:
    digest = content_digest(*BASE)
    claim(digest, "m1", window=60)
    expires, _, now = guard(digest)
    assert now + 58_000 < expires <= now + 60_000
    with pytest.raises(Refusal) as caught:
        claim(digest, "m2", window=60)
    assert caught.value.detail == "same content to this recipient within 60s"


def test_an_expired_window_is_claimed_again_by_the_new_message(policy_db: str) -> None:
    digest = content_digest(*BASE)
    claim(digest, "m1", window=0)
    claim(digest, "m2", window=10)
    expires, owner, now = guard(digest)
    assert owner == "m2"
    assert now + 8_000 < expires <= now + 10_000


def test_two_merchants_sending_the_same_text_to_the_same_number_are_both_accepted(policy_db: str) -> None:
    claim(content_digest(1, "SMS", "+18135551234", "", "Your code is 4821"), "m1")
    claim(content_digest(2, "SMS", "+18135551234", "", "Your code is 4821"), "m2")
    with pytest.raises(Refusal) as caught:
        claim(content_digest(1, "SMS", "+18135551234", "", "Your code is 4821"), "m3")
    assert (caught.value.code, caught.value.field) == (Code.DUPLICATE_WITHIN_WINDOW, "to")
