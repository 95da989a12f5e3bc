"""Contact-list uploads: whole-file refusals with their seed codes, and per-row results."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.contacts_csv import MAX_UPLOAD_BYTES, CsvImport, parse_contact_csv
from worker.validation.phone import normalize_phone

GOOD = b"+18135551234\n+447400123456\n"

file_refusals = (
    # (data, filename, source, code)
    (None, "list.csv", "import", Code.UPLOAD_REQUIRED),
    (b"", "list.csv", "import", Code.UPLOAD_REQUIRED),
    (GOOD, "list.pdf", "import", Code.UPLOAD_NOT_CSV),
    (GOOD, "list.csv.exe", "import", Code.UPLOAD_NOT_CSV),
    (GOOD, "list", "import", Code.UPLOAD_NOT_CSV),
    (b"+18135551234\n" * (MAX_UPLOAD_BYTES // 13 + 1), "list.csv", "import", Code.UPLOAD_TOO_LARGE),
    (GOOD, "list.csv", "ab", Code.INVALID_SOURCE_LENGTH),
    (GOOD, "list.csv", "abcdefghijk", Code.INVALID_SOURCE_LENGTH),
    (GOOD, "list.csv", "", Code.INVALID_SOURCE_LENGTH),
    (GOOD, "list.csv", "web1", Code.INVALID_SOURCE_TYPE),
    (GOOD, "list.csv", "web site", Code.INVALID_SOURCE_TYPE),
    (GOOD, "list.csv", "wébsite", Code.INVALID_SOURCE_TYPE),
    (b"\xff\xfe+\x001\x00", "list.csv", "import", Code.UPLOAD_FAILED),  # UTF-16
    (b"+18135551234\x00\n", "list.csv", "import", Code.UPLOAD_FAILED),  # NUL byte
    (b"\x89PNG\r\n\x1a\n\x00\x00", "list.csv", "import", Code.UPLOAD_FAILED),
    (b'"+18135551234\n', "list.csv", "import", Code.UPLOAD_FAILED),  # unterminated quote at EOF
    (b"x" * 200_000, "list.csv", "import", Code.UPLOAD_FAILED),  # a field over the csv module's limit
)


@pytest.mark.parametrize(("data", "filename", "source", "code"), file_refusals)
def test_unreadable_or_unacceptable_uploads_are_refused_whole(
    data: bytes | None, filename: str, source: str, code: Code
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_contact_csv(data, filename, source)
    assert caught.value.code is code


def test_a_file_of_exactly_one_mebibyte_is_accepted() -> None:
    line = b"+18135551234\n"
    data = line * (MAX_UPLOAD_BYTES // len(line))
    data += b" " * (MAX_UPLOAD_BYTES - len(data))
    assert len(data) == MAX_UPLOAD_BYTES
    assert parse_contact_csv(data, "LIST.CSV", "upload").contacts == ["+18135551234"]


imports = (
    (GOOD, CsvImport(["+18135551234", "+447400123456"], [])),
    (b"\xef\xbb\xbf+18135551234\r\n+447400123456\r\n", CsvImport(["+18135551234", "+447400123456"], [])),
    (b"phone,name\n+18135551234,Mary\n", CsvImport(["+18135551234"], [])),
    (b"name,Mobile\nMary,+18135551234\nJoe,+919876543210\n", CsvImport(["+18135551234", "+919876543210"], [])),
    (b"name,to\nMary,+18135551234\nJoe\n", CsvImport(["+18135551234"], [(3, "***", Code.INVALID_MOBILE_NUMBER)])),
    (b"number\n+18135551234\n", CsvImport(["+18135551234"], [])),  # no digit: taken as a header
    (b"+18135551234\n\n\n+18135551234\n+1 813 555 1234\n", CsvImport(["+18135551234"], [])),
    (
        b"+18135551234\n+19005551234\n+1 800 FLOWERS\n8135551234\n",
        CsvImport(
            ["+18135551234"],
            [
                (2, "+1******1234", Code.INVALID_NUMBER_TYPE),
                (3, "***", Code.INVALID_MOBILE_NUMBER),
                (4, "******1234", Code.INVALID_MOBILE_NUMBER),
            ],
        ),
    ),
    (b'"+1 (813)\n555-1234",x\n+447400123456\n', CsvImport(["+447400123456"], [(2, "+1******1234", "E406")])),
    (b"phone\n", CsvImport([], [])),
    (b"\n\n", CsvImport([], [])),
)


@pytest.mark.parametrize(("data", "expected"), imports)
def test_numbers_are_normalised_deduplicated_and_bad_rows_reported_by_line(data: bytes, expected: CsvImport) -> None:
    assert parse_contact_csv(data, "contacts.csv", "crm") == expected


def test_a_default_region_reads_national_numbers() -> None:
    result = parse_contact_csv(b"07400 123456\n", "contacts.csv", "crm", default_region="GB")
    assert result.contacts == ["+447400123456"]


def test_rejected_rows_never_hold_a_whole_number() -> None:
    result = parse_contact_csv(b"+19005551234\n+442079460958\n", "contacts.csv", "crm")
    assert [masked for _, masked, _ in result.rejected] == ["+1******1234", "+44******0958"]


@settings(max_examples=400)
@given(
    st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode), st.none()),
    st.sampled_from(("list.csv", "list.txt", "")),
    st.one_of(st.text(max_size=12), st.sampled_from(("crm", "upload"))),
)
def test_any_upload_gives_a_result_or_a_coded_refusal(data: bytes | None, filename: str, source: str) -> None:
    try:
        result = parse_contact_csv(data, filename, source)
    except ValidationError as exc:
        assert exc.code in {
            Code.UPLOAD_REQUIRED,
            Code.UPLOAD_NOT_CSV,
            Code.UPLOAD_TOO_LARGE,
            Code.INVALID_SOURCE_LENGTH,
            Code.INVALID_SOURCE_TYPE,
            Code.UPLOAD_FAILED,
        }
        return
    assert len(set(result.contacts)) == len(result.contacts)
    assert all(number.startswith("+") for number in result.contacts)


phone_rows = st.lists(
    st.one_of(st.from_regex(r"\+[1-9][0-9]{9,12}", fullmatch=True), st.sampled_from(("+18135551234", "junk", ""))),
    max_size=15,
)


@settings(max_examples=300)
@given(phone_rows)
def test_every_non_blank_row_is_either_a_contact_or_reported_on_its_line(rows: list[str]) -> None:
    data = ("\n".join(["phone", *rows]) + "\n").encode()
    result = parse_contact_csv(data, "contacts.csv", "crm")
    rejected_lines = {line for line, _, _ in result.rejected}
    expected: list[str] = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            number = normalize_phone(row)
        except ValidationError:
            assert line in rejected_lines
            continue
        assert line not in rejected_lines
        expected += [] if number in expected else [number]
    assert result.contacts == expected
