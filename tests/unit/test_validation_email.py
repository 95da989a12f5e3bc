"""Email addresses: one canonical, lower-cased form, and a coded refusal for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.email import normalize_email

accepted = (
    ("mary@example.com", "mary@example.com"),
    ("Mary.Smith@Example.COM", "mary.smith@example.com"),
    ("  mary@example.com ", "mary@example.com"),
    ("mary+news@example.co.uk", "mary+news@example.co.uk"),
    ("Ünïcode@exämple.com", "ünïcode@exämple.com"),
    ("user@xn--exmple-cua.com", "user@exämple.com"),
)


@pytest.mark.parametrize(("raw", "expected"), accepted)
def test_valid_addresses_come_back_normalised_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


refused = (
    "",
    "   ",
    "mary",
    "mary@",
    "@example.com",
    "mary@localhost",
    "mary@example..com",
    '"quoted"@example.com',
    "mary@[192.0.2.1]",
    "a\r\nbcc@x.com@ex.com",
    "mary@example.com\r\nBcc: victim@example.com",
    "mary@example.com\n",
    "ma\x00ry@example.com",
    "mary\u2028@example.com",
    "ma\u202ery@example.com",  # right-to-left override
    "ma\u200bry@example.com",  # zero-width space
    "mary @example.com",
    "a" * 300 + "@example.com",
    "mary@" + "a" * 320 + ".com",
)


@pytest.mark.parametrize("raw", refused)
def test_malformed_or_injecting_addresses_are_refused_as_invalid_email(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_email(raw)
    assert caught.value.code is Code.INVALID_EMAIL
    assert caught.value.field == "to"


@pytest.mark.parametrize("raw", (None, 42, b"mary@example.com", ["mary@example.com"]))
def test_anything_but_text_is_not_an_email_address(raw: object) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_email(raw)  # type: ignore[arg-type]
    assert caught.value.code is Code.INVALID_EMAIL


def test_refusals_show_only_a_masked_address() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_email("secretname@example..com", field="email")
    assert "secretname" not in str(caught.value)
    assert caught.value.field == "email"


def test_different_cases_of_one_address_share_one_key() -> None:
    assert normalize_email("MARY@Example.com") == normalize_email("mary@EXAMPLE.COM")


def test_turkish_dotted_capital_i_lower_cases_to_a_valid_address() -> None:
    key = normalize_email("İstanbul@example.com")
    assert key == key.lower()
    assert normalize_email(key) == key


address_like = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.text(min_size=1, max_size=30),
    st.from_regex(r"[A-Za-z0-9-]{1,20}\.[A-Za-z]{2,6}", fullmatch=True),
)


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=400), address_like, st.none(), st.integers(), st.binary(max_size=40)))
def test_any_input_gives_a_stable_lower_case_address_or_a_coded_refusal(raw: object) -> None:
    try:
        address = normalize_email(raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        assert exc.code is Code.INVALID_EMAIL
        return
    assert address == address.lower()
    assert normalize_email(address) == address
    assert "\r" not in address and "\n" not in address
