"""Parse a raw JSON payload into its contract model, turning shape errors into catalogue codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, overload

import pydantic

from worker.catalogue import Code
from worker.contract import JOBS, EmailJob, Job, SmsJob, VoiceJob
from worker.errors import AuthenticationError, ValidationError

__all__ = ["SEND_JOBS", "SendJob", "parse_job"]

#: A job that sends messages, and those jobs by task name: what the intake admits.
SendJob = SmsJob | VoiceJob | EmailJob
SEND_JOBS: Mapping[str, type[SendJob]] = {name: model for name, model in JOBS.items()
                                          if issubclass(model, SmsJob | VoiceJob | EmailJob)}

J = TypeVar("J", bound=pydantic.BaseModel)

#: Missing required fields that the seed gives codes of their own.
_MISSING = {"auth": Code.AUTHENTICATION_FAILED, "merchantId": Code.MERCHANT_NOT_FOUND, "to": Code.TO_REQUIRED,
            "body": Code.BODY_EMPTY, "sender": Code.SENDER_REQUIRED, "type": Code.TYPE_REQUIRED}


@overload
def parse_job(task_name: str, payload: Any) -> Job: ...


@overload
def parse_job(task_name: str, payload: Any, jobs: Mapping[str, type[J]]) -> J: ...


def parse_job(task_name: str, payload: Any, jobs: Mapping[str, type[pydantic.BaseModel]] = JOBS) -> pydantic.BaseModel:
    """The job model for ``payload`` or a ValidationError naming the first bad field.

    ``jobs`` narrows the names a caller takes (and so the model it gets back), e.g. :data:`SEND_JOBS`; a name
    outside it is refused as an unknown job.
    """
    model = jobs.get(task_name)
    if model is None:
        raise ValidationError(Code.UNSUPPORTED_JOB, f"unknown job {task_name[:80]!r}")
    if not isinstance(payload, dict):
        raise ValidationError(Code.INVALID_INPUT, "the job payload must be a JSON object")
    bad = _unstorable_text(payload)
    if bad is not None:
        raise ValidationError(Code.INVALID_INPUT, "text with NUL or invalid Unicode cannot be stored", field=bad)
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as err:
        raise _refusal(err) from None


def _unstorable_text(value: Any, path: str = "payload", depth: int = 0) -> str | None:
    """Where the first string (key or value) PostgreSQL cannot store is: NUL, or a lone surrogate.

    The path names only keys that are themselves storable, so it is safe to echo back.
    """
    if isinstance(value, str):
        return None if _storable(value) else path
    if depth > 32:
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in children:
        if isinstance(key, str) and not _storable(key):
            return f"{path}.<field name>"
        found = _unstorable_text(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]", depth + 1)
        if found is not None:
            return found
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refusal(err: pydantic.ValidationError) -> ValidationError | AuthenticationError:
    first = err.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(part) for part in first["loc"])
    top = str(first["loc"][0]) if first["loc"] else ""
    if top == "auth":
        return AuthenticationError(Code.AUTHENTICATION_FAILED, "credentials missing or malformed", field="auth")
    if first["type"] == "missing" and top in _MISSING:
        return ValidationError(_MISSING[top], f"{top} is required", field=top)
    return ValidationError(Code.INVALID_INPUT, f"{loc}: {first['msg']}"[:300], field=loc or None)
