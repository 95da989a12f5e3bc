"""A per-process cache of the lookups every job repeats (API key, merchant, route), invalidated at once on change.

Every send job reads its key, its merchant and its route: three round trips for rows that change a few times a day.
This cache keeps plain, immutable copies of them (never ORM instances, never a secret in plain text) and stays
correct through one shared number, the *generation*, kept in Redis (HEXAVOX_REDIS_URL):

- Every transaction that writes a tenant, key, merchant or route adds one to it right after its commit. Nobody has
  to remember to: session events (below, registered on import; worker.policy.auth and worker.policy.merchants,
  which every writer of these rows uses, import this module) notice such writes, whichever code makes them, and
  bump on commit. So a revoked key, a deactivated merchant or a disabled route is seen by the very next job in
  every process.
- A job reads the generation once (its first cached lookup in a transaction) *before* any row it caches, and uses an
  entry only when it was stored under that same generation. A row read before a change was committed is stored
  under a generation that the change's bump leaves behind: it is never served after the bump.
- Each entry also expires HEXAVOX_LOOKUP_CACHE_SECONDS after it was read (default 2 s; 0 switches the cache off),
  which bounds how long a bump lost on its way (Redis briefly unreachable from the writer) can leave a row stale.
- Without Redis (embedded mode), or when it cannot be read, every lookup goes to the database: never blind. A
  process that finds Redis unreachable also drops what it had cached, since a change may have gone unannounced.
- A transaction that writes any of these rows itself bypasses the cache for the rest of it (it must see its own
  uncommitted writes, and must not cache them: they may still be rolled back).

Quota and limits are not here: balances are charged by their own conditional UPDATE (worker/policy/quota.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import redis
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from schema.models import ApiKey, Merchant, Route, Tenant
from worker.advisory_redis import AdvisoryRedis
from worker.settings import get_settings

__all__ = ["GENERATION_KEY", "MISSING", "bump", "cached", "clear", "current_generation"]

#: The Redis key of the shared generation.
GENERATION_KEY = "hexavox:lookups:generation"
#: What a loader returns for a row it must not cache (not found, inactive): the caller reads the database each time.
MISSING: Any = object()

_WATCHED_MODELS: tuple[type[Any], ...] = (Tenant, ApiKey, Merchant, Route)
_WATCHED_TABLES = frozenset(model.__tablename__ for model in _WATCHED_MODELS)
_WROTE = "hexavox_lookup_writes"  # session.info flag: this transaction wrote a watched row
_GENERATION = "hexavox_lookup_generation"  # session.info: (generation, read at) for this transaction
_MAX_ENTRIES = 20_000  # a bound on memory whatever the number of merchants; cleared whole past it
_REDIS_TIMEOUT = 0.25  # seconds: a Redis that does not answer by then counts as down for this lookup
_REDIS_BACKOFF = 1.0  # seconds the cache stays off (database reads) after Redis failed, so jobs do not each wait

_entries: dict[Hashable, tuple[int, float, Any]] = {}

T = TypeVar("T")


def _drop_entries() -> None:
    _entries.clear()  # a change may have gone unannounced while Redis was away: start again from the database


_redis = AdvisoryRedis("lookup cache, reading the database", timeout=_REDIS_TIMEOUT, backoff=_REDIS_BACKOFF,
                       on_failure=_drop_entries)


def _read_generation(client: redis.Redis) -> int:
    value = client.get(GENERATION_KEY)
    if value is None:
        # A new or flushed Redis: start from a random number, so entries stored under a generation of before the
        # reset cannot match one counted again from zero.
        client.set(GENERATION_KEY, secrets.randbits(62), nx=True)
        value = client.get(GENERATION_KEY)
    return int(value)  # type: ignore[arg-type]


def current_generation(session: Session) -> int | None:
    """The generation this transaction's lookups use; None: read the database (cache off, no Redis, or a
    transaction that wrote watched rows itself)."""
    settings = get_settings()
    if settings.lookup_cache_seconds <= 0 or not settings.redis_url or _writes_watched(session):
        return None
    now = time.monotonic()
    held = session.info.get(_GENERATION)
    if held is not None and now - held[1] < settings.lookup_cache_seconds:
        return int(held[0])
    generation = _redis.call(settings.redis_url, _read_generation)
    if generation is not None:  # dropped when the transaction ends (every job ends its own)
        session.info[_GENERATION] = (generation, now)
    return generation


def cached(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """The value of ``load()`` for ``key``: from this process's cache when stored under the current generation and
    younger than HEXAVOX_LOOKUP_CACHE_SECONDS, else loaded (and kept unless it is :data:`MISSING`).

    ``load`` must return an immutable value (no ORM instance). The key is scoped to the session's database.
    """
    generation = current_generation(session)
    if generation is None:
        return load()
    scoped = (session.get_bind().engine.url, key)
    now = time.monotonic()
    hit = _entries.get(scoped)
    if hit is not None and hit[0] == generation and hit[1] > now:
        return hit[2]  # type: ignore[no-any-return]
    value = load()
    if value is not MISSING:
        if len(_entries) >= _MAX_ENTRIES:
            _entries.clear()
        _entries[scoped] = (generation, now + get_settings().lookup_cache_seconds, value)
    return value


def bump() -> bool:
    """Add one to the generation: every process's cached lookups are stale from now on. False if Redis could not
    be reached (this process's own entries are dropped anyway; others' expire within the TTL)."""
    _entries.clear()
    url = get_settings().redis_url
    if not url:
        return True
    return _redis.call(url, lambda client: client.incr(GENERATION_KEY)) is not None


def clear() -> None:
    """Forget this process's entries and Redis state (tests, and a process whose settings changed)."""
    _entries.clear()
    _redis.reset()


def _writes_watched(session: Session) -> bool:
    """Whether this transaction wrote (or is about to flush) a tenant, key, merchant or route."""
    if session.info.get(_WROTE):
        return True
    for objects in (session.new, session.dirty, session.deleted):
        if any(isinstance(obj, _WATCHED_MODELS) for obj in objects):
            session.info[_WROTE] = True
            return True
    return False


@event.listens_for(Session, "before_flush")
def _note_flushed_writes(session: Session, _context: Any, _instances: Any) -> None:
    _writes_watched(session)


@event.listens_for(Session, "do_orm_execute")
def _note_statement_writes(state: ORMExecuteState) -> None:
    """An INSERT, UPDATE or DELETE statement (not through the unit of work) on a watched table."""
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _WATCHED_TABLES:
            state.session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _bump_after_commit(session: Session) -> None:
    """After the database commit (a savepoint's release is no commit: its writes may still be rolled back)."""
    if not session.in_nested_transaction() and session.info.pop(_WROTE, False):
        bump()


@event.listens_for(Session, "after_transaction_end")
def _forget_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)
        session.info.pop(_GENERATION, None)
