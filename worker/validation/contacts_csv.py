"""Contact-list uploads: check the file (seed 000 E638-E642, E700), then read one number per row.

The file is refused as a whole only when it cannot be read at all; a bad row is reported
with its line number and a masked value, and the good rows are kept (docs/reliability.md B5: each
refusal has a code, none is dropped silently). Duplicates are folded into the first
occurrence without a report: a list holds each number once.

Format: UTF-8 (a BOM is allowed), comma-separated, header optional. The number is in the
column headed ``phone``, ``mobile`` or ``to`` (any case) or else in the first column; a first
row whose first cell has no digit is taken as a header. Control characters other than tab,
CR and LF (NUL above all) mean the file is not text, so it is refused as UPLOAD_FAILED.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from worker.catalogue import Code
from worker.errors import ValidationError
from worker.validation.masking import mask_phone
from worker.validation.phone import normalize_phone

__all__ = ["MAX_UPLOAD_BYTES", "CsvImport", "parse_contact_csv"]

#: Seed 000 E640 "less than 1 MB": a file of exactly 1 MiB is still accepted.
MAX_UPLOAD_BYTES = 1_048_576
_PHONE_HEADERS = frozenset({"phone", "mobile", "to"})
_SOURCE_LENGTH = range(3, 11)
_TEXT_CONTROLS = frozenset("\t\r\n")


@dataclass(frozen=True)
class CsvImport:
    """What an upload yielded: numbers in E.164, first occurrence order, and the refused rows."""

    contacts: list[str] = field(default_factory=list)
    #: (line number, masked value, catalogue code) for every row that was refused.
    rejected: list[tuple[int, str, str]] = field(default_factory=list)


def _check_upload(data: object, filename: object) -> bytes:
    """``data`` if it is a non-empty CSV upload under the size limit."""
    if not isinstance(data, bytes) or not data:
        raise ValidationError(Code.UPLOAD_REQUIRED, "upload a file", field="file")
    if not isinstance(filename, str) or not filename.lower().endswith(".csv"):
        raise ValidationError(Code.UPLOAD_NOT_CSV, "only .csv files are accepted", field="file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(Code.UPLOAD_TOO_LARGE, f"the file is over {MAX_UPLOAD_BYTES} bytes", field="file")
    return data


def _check_source(source: object) -> str:
    """``source``, a label of 3-10 ASCII letters naming where the contacts came from."""
    if source is None or (isinstance(source, str) and len(source) not in _SOURCE_LENGTH):
        raise ValidationError(Code.INVALID_SOURCE_LENGTH, "source must be 3-10 characters", field="source")
    if not isinstance(source, str) or not (source.isascii() and source.isalpha()):
        raise ValidationError(Code.INVALID_SOURCE_TYPE, "source must be letters only", field="source")
    return source


def _decode(data: bytes) -> str:
    """The file as text; refused when it is not UTF-8 text."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(Code.UPLOAD_FAILED, "the file is not UTF-8 text", field="file") from None
    if any(unicodedata.category(ch) == "Cc" and ch not in _TEXT_CONTROLS for ch in text):
        raise ValidationError(Code.UPLOAD_FAILED, "the file holds binary data", field="file")
    return text


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank row; a malformed file is UPLOAD_FAILED."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error:
        raise ValidationError(Code.UPLOAD_FAILED, "the file is not valid CSV", field="file") from None


def _phone_column(first: list[str]) -> tuple[int, bool]:
    """(column holding the number, whether ``first`` is a header row)."""
    for index, cell in enumerate(first):
        if cell.strip().lower() in _PHONE_HEADERS:
            return index, True
    return 0, not any(ch.isdigit() for ch in first[0])


def _outcome(raw: str, channel: str, default_region: str | None) -> tuple[str, Code | None]:
    """(E.164 number, None) for a good value, ('', code) for a refused one."""
    try:
        return normalize_phone(raw, channel=channel, default_region=default_region), None
    except ValidationError as exc:
        return "", exc.code


def _collect(rows: list[tuple[int, list[str]]], column: int, channel: str, default_region: str | None) -> CsvImport:
    """Normalise the number in ``column`` of each row; keep the first of duplicates, report the refused.

    Outcomes are remembered per raw value: parsing costs ~0.1 ms, and lists repeat numbers a lot.
    """
    result = CsvImport()
    outcomes: dict[str, tuple[str, Code | None]] = {}
    seen: set[str] = set()
    for line, row in rows:
        raw = row[column].strip() if column < len(row) else ""
        if raw not in outcomes:
            outcomes[raw] = _outcome(raw, channel, default_region)
        number, code = outcomes[raw]
        if code is not None:
            result.rejected.append((line, mask_phone(raw), code))
        elif number not in seen:
            seen.add(number)
            result.contacts.append(number)
    return result


def parse_contact_csv(
    data: bytes | None,
    filename: str,
    source: str,
    *,
    channel: str = "SMS",
    default_region: str | None = None,
) -> CsvImport:
    """The numbers in an uploaded contact list, or a :class:`ValidationError` for the whole file.

    The whole file is parsed before any row is checked, so a malformed line near the end
    refuses the upload rather than leaving half a list.
    """
    upload = _check_upload(data, filename)
    _check_source(source)
    rows = list(_rows(_decode(upload)))
    if not rows:
        return CsvImport()
    column, has_header = _phone_column(rows[0][1])
    return _collect(rows[1:] if has_header else rows, column, channel, default_region)
