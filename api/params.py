"""Query and path parameters, checked against the same schemas the OpenAPI document publishes for them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from api.endpoints import Operation, Param
from worker.catalogue import Code
from worker.errors import ValidationError

__all__ = ["read_params"]

_INTEGER = re.compile(r"^-?[0-9]{1,12}$")


def _bad(param: Param, why: str) -> ValidationError:
    return ValidationError(Code.INVALID_INPUT, f"{param.name} {why}", field=param.name)


def _storable(text: str) -> bool:
    """No NUL and no lone surrogate: PostgreSQL can compare it (the job payload check, for parameters)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _value(param: Param, raw: str) -> Any:
    schema = param.schema
    if not _storable(raw):
        raise _bad(param, "has a NUL or invalid Unicode character")
    if "enum" in schema:
        if raw not in schema["enum"]:
            raise _bad(param, f"must be one of {', '.join(map(str, schema['enum']))}")
        return raw
    if schema.get("type") == "integer":
        if not _INTEGER.match(raw):
            raise _bad(param, "must be an integer")
        number = int(raw)
        if number < schema.get("minimum", number) or number > schema.get("maximum", number):
            raise _bad(param, f"must be {schema.get('minimum')}-{schema.get('maximum')}")
        return number
    if schema.get("format") == "date":
        try:
            if len(raw) != 10:
                raise ValueError(raw)
            return dt.date.fromisoformat(raw).isoformat()
        except ValueError:
            raise _bad(param, "must be a date, YYYY-MM-DD") from None
    if not schema.get("minLength", 0) <= len(raw) <= schema.get("maxLength", len(raw)):
        raise _bad(param, f"must be {schema.get('minLength', 0)}-{schema.get('maxLength')} characters")
    return raw


def read_params(op: Operation, query: Mapping[str, str], path: Mapping[str, Any]) -> dict[str, Any]:
    """The operation's parameters by name (defaults filled in); E413 (422) names the first bad one."""
    known = {param.name for param in op.params if param.where == "query"}
    unknown = sorted(name for name in query if name not in known)
    if unknown:
        raise ValidationError(Code.INVALID_INPUT, f"unknown query parameter {unknown[0][:40]!r}",
                              field=unknown[0][:40])
    values: dict[str, Any] = {}
    for param in op.params:
        raw = path.get(param.name) if param.where == "path" else query.get(param.name)
        if raw is None:
            if param.required:
                raise _bad(param, "is required")
            if "default" in param.schema:
                values[param.name] = param.schema["default"]
            continue
        values[param.name] = _value(param, str(raw))
    return values
