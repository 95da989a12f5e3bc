"""Parse a raw JSON payload into its contract model, turning shape errors into catalogue codes."""

from __future__ import annotations

from typing import Any

import pydantic

from worker.catalogue import Code
from worker.contract import JOBS
from worker.errors import AuthenticationError, ValidationError

__all__ = ["parse_job"]

#: Missing required fields that the seed gives codes of their own.
_MISSING = {"auth": Code.AUTHENTICATION_FAILED, "merchantId": Code.MERCHANT_NOT_FOUND, "to": Code.TO_REQUIRED,
            "body": Code.BODY_EMPTY, "sender": Code.SENDER_REQUIRED, "type": Code.TYPE_REQUIRED}


def parse_job(task_name: str, payload: Any) -> pydantic.BaseModel:
    """The job model for ``payload`` or a ValidationError naming the first bad field."""
    model = JOBS.get(task_name)
    if model is None:
        raise ValidationError(Code.UNSUPPORTED_JOB, f"unknown job {task_name[:80]!r}")
    if not isinstance(payload, dict):
        raise ValidationError(Code.INVALID_INPUT, "the job payload must be a JSON object")
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as err:
        raise _refusal(err) from None


def _refusal(err: pydantic.ValidationError) -> ValidationError | AuthenticationError:
    first = err.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(part) for part in first["loc"])
    top = str(first["loc"][0]) if first["loc"] else ""
    if top == "auth":
        return AuthenticationError(Code.AUTHENTICATION_FAILED, "credentials missing or malformed", field="auth")
    if first["type"] == "missing" and top in _MISSING:
        return ValidationError(_MISSING[top], f"{top} is required", field=top)
    return ValidationError(Code.INVALID_INPUT, f"{loc}: {first['msg']}"[:300], field=loc or None)
