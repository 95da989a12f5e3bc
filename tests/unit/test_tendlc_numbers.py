"""Which senders are 10DLC long codes and which recipients are US destinations (the send rule's cheap part)."""

from __future__ import annotations

import pytest

from worker.policy.tendlc_send import is_us_destination, long_code


@pytest.mark.parametrize(("sender", "expected"), [
    ("+12015550123", "+12015550123"),  # a US long code
    ("12015550123", "+12015550123"),  # digits with the country code, as seed 000 allows
    ("2015550123", "+12015550123"),  # ten digits: a North American number
    ("+14165550100", "+14165550100"),  # Canada: long codes there register the same way
    ("+18005550100", None),  # toll-free: verified separately, not 10DLC
    ("+18885551234", None),
    ("12345", None),  # a short code
    ("GYMA", None),  # an alphanumeric sender id
    ("+442071234567", None),  # another country's number
    ("", None),
])
def test_a_10dlc_sender_is_a_us_or_canadian_long_code(sender: str, expected: str | None) -> None:
    assert long_code(sender) == expected


@pytest.mark.parametrize(("recipient", "expected"), [
    ("+18135551234", True), ("+14165550100", False), ("+447911123456", False), ("+1", False),
])
def test_only_us_numbers_are_us_destinations(recipient: str, expected: bool) -> None:
    assert is_us_destination(recipient) is expected
