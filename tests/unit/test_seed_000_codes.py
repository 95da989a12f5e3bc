"""Every code of seed 000's error table is accounted for in the README (issue 12, item 7)."""

from __future__ import annotations

from pathlib import Path

from worker.catalogue import SEED_000_ANSWERED_OTHERWISE, Code, markdown_table, seed_000_table

README = Path(__file__).resolve().parents[2] / "README.md"

#: The codes of seed 000's error table (E100-E700), copied from the seed page.
SEED_000_CODES = frozenset({
    "E100", "E101", "E102", "E103", "E104", "E105", *(f"E{n}" for n in range(400, 414)),
    *(f"E{n}" for n in range(600, 627)), "E638", "E639", "E640", "E641", "E642", "E700",
})


def test_every_seed_000_code_is_answered_or_mapped_to_what_is_answered_instead() -> None:
    ours = {code.value for code in Code} & SEED_000_CODES
    otherwise = {code for code, _description, _instead in SEED_000_ANSWERED_OTHERWISE}

    assert ours | otherwise == SEED_000_CODES, sorted(SEED_000_CODES - ours - otherwise)
    assert not ours & otherwise  # a code is either ours, with the seed's meaning, or answered otherwise


def test_the_seed_parameters_checks_are_catalogue_codes() -> None:
    assert {"E603", "E605", "E609", "E610", "E617"} <= {code.value for code in Code}


def test_the_readme_has_both_tables() -> None:
    readme = README.read_text()

    assert markdown_table() in readme and seed_000_table() in readme, "run `hexavox catalogue --markdown`"
    for code in ("E612", "E616", "E618", "E621", "E622"):
        assert f"| {code} |" in seed_000_table()
