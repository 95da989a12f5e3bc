"""The attempt cap for intake and admin jobs, kept in the database because Redis has none.

``task_acks_late`` with ``task_reject_on_worker_lost`` gives a job back to the broker when its worker
dies, which is what keeps an accepted job from being lost; but a job that kills its worker every time
(a payload that exhausts memory, a driver that segfaults) then comes back forever. Brokers mark such a
copy as redelivered (kombu's Redis transport does so since 5.3, AMQP always), so only redelivered copies
are counted: the first delivery of every job costs nothing. Past the cap the job is answered E818 instead
of being run again. Dispatch has a cap of its own on the message row (``messages.dispatch_attempts``).
"""

from __future__ import annotations

from sqlalchemy import delete

from schema.models import TaskRedelivery
from worker.db import session_scope, upsert_insert

__all__ = ["count_redelivery", "forget_redeliveries"]


def count_redelivery(task_id: str, task_name: str) -> int:
    """Record one more redelivery of ``task_id`` in its own commit (before running it); returns the count so far."""
    with session_scope() as session:
        insert = upsert_insert(session, TaskRedelivery).values(task_id=task_id[:155], task_name=task_name[:80],
                                                               redeliveries=1)
        counted = insert.on_conflict_do_update(index_elements=[TaskRedelivery.task_id],
                                               set_={"redeliveries": TaskRedelivery.redeliveries + 1})
        return int(session.execute(counted.returning(TaskRedelivery.redeliveries)).scalar_one())


def forget_redeliveries(task_id: str) -> None:
    """The job completed: its count is no longer needed."""
    with session_scope() as session:
        session.execute(delete(TaskRedelivery).where(TaskRedelivery.task_id == task_id[:155]))
