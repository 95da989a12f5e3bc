"""Requests and Idempotency-Key collapse.

A request row is inserted with ON CONFLICT DO NOTHING on both its id (the same job
redelivered) and (merchant, idempotency key) (a retried logical action). A concurrent retry
waits on the unique index until the first commits, then finds its finished result: one
message however many retries race. The same key with a different payload is an error (E809).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from schema.models import Request
from schema.states import RequestStatus
from worker.catalogue import Code
from worker.errors import Refusal

__all__ = ["payload_digest", "begin_request", "finish_request"]

REQUESTS = cast(Table, Request.__table__)
#: The claim, as text: SQLAlchemy never caches an ON CONFLICT construct (it would be compiled again for every job),
#: and this statement reads the same on PostgreSQL and SQLite. The row starts REFUSED with an empty answer;
#: :func:`finish_request` writes the real one in the same transaction, so no other job ever sees this state.
_CLAIM = text(
    "INSERT INTO requests (id, tenant_id, merchant_id, kind, idempotency_key, payload_sha256, status, result) "
    "VALUES (:id, :tenant_id, :merchant_id, :kind, :idempotency_key, :digest, "
    f"'{RequestStatus.REFUSED.value}', '{{}}') "
    "ON CONFLICT DO NOTHING RETURNING id")
#: The answer, built once: a statement object keeps its cache key, so executing it again skips rebuilding it.
_FINISH = (update(REQUESTS).where(REQUESTS.c.id == bindparam("request_id"))
           .values(status=bindparam("new_status"), result=bindparam("answer", type_=REQUESTS.c.result.type))
           .returning(REQUESTS.c.id))


def payload_digest(payload: dict[str, Any]) -> str:
    """Digest of the job without its credentials and ids, to compare retries under one key."""
    core = {k: v for k, v in payload.items() if k not in {"auth", "idempotencyKey"}}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


def begin_request(session: Session, request_id: str, *, tenant_id: int | None, merchant_id: int | None, kind: str,
                  idempotency_key: str | None, digest: str) -> dict[str, Any] | None:
    """Insert the request row. Returns None when this job is new, else the earlier result to answer with."""
    claimed = session.execute(_CLAIM, {"id": request_id, "tenant_id": tenant_id, "merchant_id": merchant_id,
                                       "kind": kind, "idempotency_key": idempotency_key, "digest": digest}).first()
    if claimed is not None:
        return None
    earlier = session.get(Request, request_id)
    if earlier is None and idempotency_key is not None:
        scope = (Request.merchant_id == merchant_id if merchant_id is not None
                 else (Request.tenant_id == tenant_id) & Request.merchant_id.is_(None))
        earlier = session.scalars(select(Request).where(scope, Request.idempotency_key == idempotency_key)).first()
    if earlier is None:  # a concurrent insert rolled back between our insert and select: treat as new
        raise Refusal(Code.INTERNAL_ERROR, "request could not be recorded; send it again")
    if earlier.payload_sha256 != digest:
        raise Refusal(Code.IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key was used with a different payload",
                      field="idempotencyKey")
    return dict(earlier.result)


def finish_request(session: Session, request_id: str, status: RequestStatus, result: dict[str, Any]) -> None:
    """Record the answer: one Core UPDATE (no read of the row begin_request just inserted, no ORM flush)."""
    done = session.execute(_FINISH, {"request_id": request_id, "new_status": status.value, "answer": result}).first()
    assert done is not None, "begin_request inserted it in this transaction"
