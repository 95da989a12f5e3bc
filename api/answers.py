"""The runner's answers (the queue's result shapes) as seed 003's HTTP answers.

A send accepted as a whole or in part is 202 with the first message's id and status (seed 003's DispatchResponse)
and every message of the request; a send refused as a whole, or whose every message was refused, is the error of
the first refusal with the HTTP status of its code (:mod:`api.status`) and the messages recorded for it.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from api.status import error_body, status_for
from schema.states import RequestStatus
from worker.catalogue import Code

__all__ = ["admin_answer", "send_answer"]

_INTERNAL = {"code": Code.INTERNAL_ERROR.value, "name": Code.INTERNAL_ERROR.name, "detail": "send it again"}


def _first_error(result: dict[str, Any]) -> dict[str, Any]:
    if isinstance(result.get("error"), dict):
        return dict(result["error"])
    for row in result.get("messages") or ():
        if isinstance(row.get("error"), dict):
            return dict(row["error"])
    return dict(_INTERNAL)


def _refused(result: dict[str, Any], request_id: str) -> JSONResponse:
    error = _first_error(result)
    body = error_body(error, str(result.get("requestId") or request_id))
    if result.get("messages"):
        body["messages"] = result["messages"]
    headers = {"Retry-After": "1"} if error["code"] == Code.INTERNAL_ERROR.value else None
    return JSONResponse(body, status_code=status_for(error["code"]), headers=headers)


def send_answer(result: dict[str, Any], request_id: str, *, simple: bool = False) -> JSONResponse:
    """202 with the DispatchResponse (or, ``simple``, the V1MessageResponse), else the first refusal."""
    messages = result.get("messages") or []
    if result.get("status") == RequestStatus.REFUSED.value or not messages:
        return _refused(result, request_id)
    first = messages[0]
    if simple:
        body: dict[str, Any] = {"requestId": result["requestId"], "messageId": first["messageId"],
                                "status": first["status"]}
    else:
        body = {"requestId": result["requestId"], "merchantId": result["merchantId"], "channel": first["channel"],
                "messageId": first["messageId"], "status": first["status"], "messages": messages,
                "warnings": result.get("warnings") or []}
    return JSONResponse(body, status_code=202)


def admin_answer(result: dict[str, Any], request_id: str) -> JSONResponse | dict[str, Any]:
    """The admin job's view (a dict, for the caller to shape), or the refusal as an HTTP answer."""
    if result.get("status") != RequestStatus.ACCEPTED.value or not isinstance(result.get("result"), dict):
        return _refused(result, request_id)
    view: dict[str, Any] = result["result"]
    return view
