"""One table from catalogue codes to HTTP statuses, and the JSON error body every refusal is answered with.

A bad request is always a 4xx: a code missing from :data:`HTTP_STATUS` is a validation refusal (422). Only
E103 (an internal error the caller may retry) is a 5xx, answered 503 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from worker.catalogue import Code
from worker.errors import Refusal

__all__ = ["ApiError", "HTTP_STATUS", "error_body", "error_response", "status_for"]

HTTP_STATUS: dict[Code, int] = {
    Code.AUTHENTICATION_FAILED: 401,
    Code.INSUFFICIENT_BALANCE: 402,
    Code.KEY_NOT_PERMITTED: 403,
    Code.CLIENT_IP_NOT_ALLOWED: 403,
    Code.MERCHANT_INACTIVE: 403,
    Code.CONSENT_OPTED_OUT: 403,
    Code.CONSENT_REQUIRED: 403,
    Code.TXN_ROUTE_DISABLED: 403,
    Code.DEFAULT_ROUTE_DISABLED: 403,
    Code.MKT_ROUTE_DISABLED: 403,
    Code.DESTINATION_NOT_ALLOWED: 403,
    Code.TENDLC_NOT_REGISTERED: 403,
    Code.TENDLC_USE_CASE_MISMATCH: 403,
    Code.MERCHANT_NOT_FOUND: 404,
    Code.LIST_NOT_FOUND: 404,
    Code.MESSAGE_NOT_FOUND: 404,
    Code.CAMPAIGN_NOT_FOUND: 404,
    Code.MESSAGING_NOT_FOUND: 404,
    Code.SIP_CREDENTIAL_NOT_FOUND: 404,
    Code.UNSUPPORTED_JOB: 404,
    Code.IDEMPOTENCY_KEY_REUSED: 409,
    Code.BILLING_REFERENCE_REUSED: 409,
    Code.DUPLICATE_WITHIN_WINDOW: 409,
    Code.CAMPAIGN_STATE_CONFLICT: 409,
    Code.MESSAGING_STATE_CONFLICT: 409,
    Code.MESSAGING_NUMBER_TAKEN: 409,
    Code.SIP_USERNAME_TAKEN: 409,
    Code.BODY_TOO_LARGE: 413,
    Code.TOO_MANY_RECIPIENTS: 413,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.UPLOAD_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.RATE_LIMITED: 429,
    Code.INTERNAL_ERROR: 503,
}
#: Every status the API may answer a refusal with (documented for each operation in the OpenAPI document).
ERROR_STATUSES: tuple[int, ...] = tuple(sorted({*HTTP_STATUS.values(), 405, 422}))


def status_for(code: Code | str) -> int:
    """The HTTP status of a catalogue code; validation (422) unless the table says otherwise."""
    try:
        return HTTP_STATUS.get(Code(code), 422)
    except ValueError:
        return 422


class ApiError(Refusal):
    """A refusal of the HTTP layer itself (size, media type, rate), with the headers it must carry."""

    def __init__(self, code: Code, detail: str = "", *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(code, detail, field=field)
        self.headers = headers or {}


def error_body(error: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The JSON error body: the catalogue code, its name, the detail and (when known) the field."""
    body = {"code": str(error.get("code", Code.INVALID_INPUT.value)), "name": str(error.get("name", "")),
            "detail": str(error.get("detail", "")), "requestId": request_id}
    if error.get("field"):
        body["field"] = str(error["field"])
    return body


def error_response(refusal: Refusal, request_id: str) -> JSONResponse:
    """A refusal as an HTTP answer (status from the table, headers of an :class:`ApiError`)."""
    headers = {"X-Request-Id": request_id}
    status = status_for(refusal.code)
    if isinstance(refusal, ApiError):
        headers.update(refusal.headers)
    if refusal.code == Code.INTERNAL_ERROR:
        headers.setdefault("Retry-After", "1")
    return JSONResponse(error_body(refusal.as_dict(), request_id), status_code=status, headers=headers)
