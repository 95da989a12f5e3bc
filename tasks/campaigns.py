"""Campaign tasks: beat's tick (a clock that claims due campaigns in the database) and the chunk task.

Both are internal: sealed by the service, run from internal queues only. A chunk task carries the campaign id and
its cursor, never recipients, so Flower and the broker show no phone numbers.
"""

from __future__ import annotations

import logging

from celery import Task

from worker.celery_app import app, redelivered
from worker.db import session_scope
from worker.policy.campaign_chunks import ChunkResult, claim_chunk, write_chunk
from worker.policy.campaigns import claim_due, stalled
from worker.policy.dispatch import crash_if
from worker.policy.transitions import utcnow
from worker.publish import publish_campaign_chunks, publish_dispatch_batches
from worker.sealing import internal_task
from worker.settings import get_settings
from worker.task_names import CAMPAIGN_CHUNK, CAMPAIGN_TICK
from worker.transient import retry_transient
from worker.urgency import yield_to_urgent

log = logging.getLogger(__name__)
#: A chunk's write undone by a deadlock or a dropped connection is tried again (it is one transaction).
WRITE_ATTEMPTS = 5


@internal_task(app, CAMPAIGN_TICK)
def campaign_tick() -> int:
    """Start a chunk for every campaign that became due (or whose chunk task was lost); returns how many."""
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        starts = claim_due(session, now) + stalled(session, now, settings.campaign_stall_seconds)
    if starts:
        log.info("campaign tick: starting %d chunk(s)", len(starts))
    return publish_campaign_chunks(starts)


@internal_task(app, CAMPAIGN_CHUNK, bind=True)
def campaign_chunk(self: Task, campaign_id: int, cursor: int) -> int:
    """Claim a range (starting the next chunk at once), write it, then publish its dispatch (after the commit).

    The test-only crash points fire on a first delivery only, so the copy the broker gives back shows the redo.
    """
    again = redelivered(self)
    result = run_campaign_chunk(campaign_id, cursor, crash=not again, redelivered=again)
    return len(result.to_dispatch)


def run_campaign_chunk(campaign_id: int, cursor: int, *, crash: bool = False, redelivered: bool = True
                       ) -> ChunkResult:
    """One chunk end to end in this process (the task's body; tests and the benchmark call it directly too).

    ``next_cursor`` of the result is the chunk this one started (the successor of its claim, or the cursor once
    its write freed a place), for callers that run chunks one after the other in-process.
    """
    settings = get_settings()
    parallel = settings.campaign_parallel_chunks
    yield_to_urgent(settings)  # an OTP in flight goes first (bounded wait)
    with session_scope() as session:
        claim = claim_chunk(session, campaign_id, cursor, chunk_size=settings.campaign_chunk_size,
                            parallel=parallel)
    if claim.successor is not None:
        publish_campaign_chunks([(campaign_id, claim.successor)])
    if claim.end is None or (claim.written and not redelivered):
        return ChunkResult(next_cursor=claim.successor)
    end = claim.end

    def before_commit() -> None:
        if crash:
            crash_if(settings, "campaign_chunk_before_commit")

    def write() -> ChunkResult:
        yield_to_urgent(settings)
        with session_scope() as session:
            return write_chunk(session, campaign_id, cursor, end, window_seconds=settings.duplicate_window_seconds,
                               parallel=parallel, redelivered=redelivered, before_commit=before_commit)

    result = retry_transient(write, attempts=WRITE_ATTEMPTS, what=f"writing chunk {cursor} of campaign {campaign_id}")
    if crash and result.fresh:
        crash_if(settings, "campaign_chunk_after_commit")
    publish_dispatch_batches(result.to_dispatch, settings.dispatch_batch_size)
    if result.next_cursor is not None:
        publish_campaign_chunks([(campaign_id, result.next_cursor)])
    if claim.successor is not None:
        result.next_cursor = claim.successor
    return result
