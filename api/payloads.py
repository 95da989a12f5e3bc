"""From an HTTP request to a queue-contract payload: a bounded JSON body, the seed's field names, the headers.

Only the shape of the door is handled here (size, media type, JSON, the names seed 003 uses, how many recipients
one request may name); every rule about the content is the policy's, reached through the runner with the same
payload a queue job carries.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from api.status import ApiError
from worker.catalogue import Code
from worker.errors import ValidationError
from worker.web import BodyTooLarge, read_body

__all__ = ["count_recipients", "read_json", "send_payload", "with_idempotency_key"]

_MAX_DEPTH = 32
_MAX_IDEMPOTENCY_KEY = 255


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, level: int = 0) -> int:
    if level > _MAX_DEPTH or not isinstance(value, dict | list):
        return level
    children = value.values() if isinstance(value, dict) else value
    return max((_depth(child, level + 1) for child in children), default=level)


async def read_json(request: Request, cap: int) -> dict[str, Any]:
    """The body as a JSON object: E844 (415) for another media type, E841 (413) above ``cap``, E413 (422) else."""
    if not _is_json(request.headers.get("content-type", "")):
        raise ApiError(Code.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
    try:
        raw = await read_body(request, cap)
    except BodyTooLarge:
        raise ApiError(Code.BODY_TOO_LARGE, f"body larger than {cap} bytes") from None
    try:
        parsed = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise ValidationError(Code.INVALID_INPUT, "the body is not valid UTF-8 JSON") from None
    if not isinstance(parsed, dict):
        raise ValidationError(Code.INVALID_INPUT, "the body must be a JSON object")
    if _depth(parsed) > _MAX_DEPTH:
        raise ValidationError(Code.INVALID_INPUT, "the body is nested too deeply")
    return parsed


def count_recipients(body: dict[str, Any]) -> int:
    """How many recipients a send names: ``to`` (list or comma-separated) and ``sms`` nodes. A list send is one."""
    to, nodes = body.get("to"), body.get("sms")
    count = len(nodes) if isinstance(nodes, list) else 0
    if isinstance(to, list):
        count += len(to)
    elif isinstance(to, str):
        count += to.count(",") + 1
    return count


def with_idempotency_key(body: dict[str, Any], header: str | None) -> dict[str, Any]:
    """The payload with the Idempotency-Key header as ``idempotencyKey`` (the header wins over the field)."""
    if header is None:
        return dict(body)
    if not header.strip() or len(header) > _MAX_IDEMPOTENCY_KEY or not header.isprintable():
        raise ValidationError(Code.INVALID_INPUT, f"Idempotency-Key must be 1-{_MAX_IDEMPOTENCY_KEY} printable "
                              "characters", field="Idempotency-Key")
    return {**body, "idempotencyKey": header}


def send_payload(body: dict[str, Any], idempotency_key: str | None, max_recipients: int, *,
                 renames: dict[str, str] | None = None) -> dict[str, Any]:
    """The queue job's payload for an HTTP send body.

    ``renames`` maps seed-003 names onto the contract's (SMS ``message`` -> ``body``); both names at once is E413.
    The Idempotency-Key header wins over an ``idempotencyKey`` field. More than ``max_recipients`` is E828 (413).
    """
    payload = dict(body)
    for seed_name, contract_name in (renames or {}).items():
        if seed_name in payload:
            if contract_name in payload:
                raise ValidationError(Code.INVALID_INPUT, f"send {seed_name} or {contract_name}, not both",
                                      field=seed_name)
            payload[contract_name] = payload.pop(seed_name)
    if count_recipients(payload) > max_recipients:
        raise ApiError(Code.TOO_MANY_RECIPIENTS, f"at most {max_recipients} recipients per request; use a listId",
                       field="to")
    return with_idempotency_key(payload, idempotency_key)
