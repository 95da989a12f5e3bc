"""Read a request's current state back from the database (`hexavox status`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from schema.models import Message, Request
from worker.db import session_scope

__all__ = ["request_status"]


def request_status(request_id: str) -> dict[str, Any] | None:
    """The intake answer plus each message's current state, or None for an unknown id."""
    with session_scope() as session:
        request = session.get(Request, request_id)
        if request is None:
            return None
        messages = session.scalars(select(Message).where(Message.request_id == request_id)
                                   .order_by(Message.created_at, Message.id)).all()
        return {
            "requestId": request.id, "kind": request.kind, "status": request.status, "answer": request.result,
            "messages": [{"messageId": m.id, "channel": m.channel, "type": m.message_type, "status": m.status,
                          "freshness": m.freshness, "units": m.units, "provider": m.provider,
                          "providerRef": m.provider_ref, "errorCode": m.error_code} for m in messages],
        }
