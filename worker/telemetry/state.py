"""Gauges read when Prometheus scrapes: message states, balances, reconcile backlog, callbacks, breakers, queues.

These describe the whole service, not one process, so exactly one kind of process exports them: beat (one per
deployment; a second beat would export the same values, which ``max`` in a query absorbs). Each scrape runs a
handful of aggregate queries; a part that fails (database or broker down) is skipped and counted in
``hexavox_state_errors`` instead of failing the scrape, so the process metrics stay visible in an outage.

Cardinality is bounded: states, channels, types and queue names are closed sets; providers are the configured
instances; per-merchant balances are kept to the ``HEXAVOX_METRICS_MAX_MERCHANTS`` merchants with the least
units left (the ones an operator has to look at).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Final, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, literal, or_, select
from sqlalchemy.orm import Session

from schema.models import Balance, Merchant, Message, OutboundCallback
from schema.states import CallbackState, MessageState
from worker.queues import ALL_QUEUES
from worker.settings import Settings

__all__ = ["StateCollector", "RECENT_WINDOW", "STATE_METRICS"]

log = logging.getLogger(__name__)

#: Settled messages count in ``hexavox_messages`` for this long after their creation; unsettled ones always.
RECENT_WINDOW: Final = dt.timedelta(hours=24)
_UNSETTLED: Final = (MessageState.QUEUED, MessageState.SCHEDULED, MessageState.DISPATCHING, MessageState.SENT,
                     MessageState.AMBIGUOUS)
_RECONCILE: Final = (MessageState.SENT, MessageState.AMBIGUOUS)
#: Every metric family this collector yields (the README documents them; a test keeps the lists equal).
STATE_METRICS: Final = frozenset({
    "hexavox_messages", "hexavox_reconcile_backlog", "hexavox_reconcile_oldest_unsettled_seconds",
    "hexavox_queued_oldest_seconds", "hexavox_merchant_units_remaining", "hexavox_merchant_units_used",
    "hexavox_balances_exhausted", "hexavox_callbacks_stored", "hexavox_breaker_open", "hexavox_queue_depth",
    "hexavox_state_errors",
})


class StateCollector(Collector):
    """A Prometheus collector over the service's shared state (see the module notes)."""

    def __init__(self, settings: Settings, now: Callable[[], dt.datetime] | None = None) -> None:
        self.settings = settings
        self.now = now or (lambda: dt.datetime.now(dt.UTC))

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not query the database (the names are in :data:`STATE_METRICS`)."""
        return []

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("hexavox_state_errors", "Parts of the last state scrape that failed.",
                                   labels=["part"])
        parts: tuple[tuple[str, Callable[[], list[Metric]]], ...] = (
            ("database", self._database), ("breakers", self._breakers), ("queues", self._queues))
        for part, read in parts:
            try:
                yield from read()
                errors.add_metric([part], 0)
            except Exception as err:  # a scrape must answer even when the database or the broker is down
                log.warning("metrics: reading %s failed: %s", part, type(err).__name__)
                errors.add_metric([part], 1)
        yield errors

    def _database(self) -> list[Metric]:
        from worker.db import session_scope

        with session_scope(self.settings.database_url) as session:
            now = self.now()
            return [_messages(session, now), *_reconcile(session, now), *_balances(session, self.settings),
                    _callbacks(session)]

    def _breakers(self) -> list[Metric]:
        from providers.breaker import breaker_for

        breaker = breaker_for(self.settings)
        gauge = GaugeMetricFamily("hexavox_breaker_open",
                                  "1 while a provider's circuit breaker refuses traffic (OPEN), else 0.",
                                  labels=["provider", "state"])
        for name in sorted(self.settings.providers):
            state = breaker.state(name).value
            gauge.add_metric([name, state], 1.0 if state == "OPEN" else 0.0)
        return [gauge]

    def _queues(self) -> list[Metric]:
        from kombu.connection import Connection

        gauge = GaugeMetricFamily("hexavox_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"])
        with Connection(self.settings.broker_url, connect_timeout=3,
                        transport_options={"visibility_timeout": self.settings.visibility_timeout}) as conn:
            channel = conn.default_channel
            for queue in ALL_QUEUES:
                gauge.add_metric([queue], float(_depth(channel, queue)))
        return [gauge]


class _DeclareOk(Protocol):
    """What a passive queue declaration answers (kombu's virtual channels and AMQP alike)."""

    @property
    def message_count(self) -> int: ...


class _Channel(Protocol):
    """The part of a broker channel the queue gauge uses."""

    def queue_declare(self, queue: str, passive: bool) -> _DeclareOk: ...


def _depth(channel: _Channel, queue: str) -> int:
    """Messages ready in ``queue`` (0 for a queue not declared yet)."""
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except Exception as err:
        if "NOT_FOUND" in str(err) or "no queue" in str(err).lower():
            return 0
        raise


def _age(now: dt.datetime, when: dt.datetime | None) -> float:
    if when is None:
        return 0.0
    aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return max(0.0, (now - aware).total_seconds())


def _messages(session: Session, now: dt.datetime) -> Metric:
    gauge = GaugeMetricFamily("hexavox_messages",
                              "Messages by state, channel, provider and type: every unsettled one, and settled ones "
                              "created in the last 24 h.", labels=["state", "channel", "provider", "type"])
    recent = or_(Message.status.in_([s.value for s in _UNSETTLED]), Message.created_at >= now - RECENT_WINDOW)
    provider = func.coalesce(Message.provider, literal("none"))
    rows = session.execute(select(Message.status, Message.channel, provider, Message.message_type, func.count())
                           .where(recent).group_by(Message.status, Message.channel, provider, Message.message_type))
    for state, channel, name, kind, count in rows:
        gauge.add_metric([state, channel, name, kind], float(count))
    return gauge


def _reconcile(session: Session, now: dt.datetime) -> list[Metric]:
    backlog = GaugeMetricFamily("hexavox_reconcile_backlog",
                                "Messages waiting for reconcile to settle them (SENT without a final report, "
                                "AMBIGUOUS).", labels=["state"])
    due = func.coalesce(Message.scheduled_at, Message.created_at)
    rows: dict[str, int] = {str(state): int(count) for state, count in session.execute(
        select(Message.status, func.count()).where(Message.status.in_([s.value for s in _RECONCILE]))
        .group_by(Message.status))}
    for state in _RECONCILE:
        backlog.add_metric([state.value], float(rows.get(state.value, 0)))
    oldest_unsettled = session.scalar(select(func.min(due)).where(
        Message.status.in_([s.value for s in _RECONCILE])))
    oldest_queued = session.scalar(select(func.min(Message.updated_at)).where(
        Message.status == MessageState.QUEUED.value))
    return [
        backlog,
        GaugeMetricFamily("hexavox_reconcile_oldest_unsettled_seconds",
                          "Age of the oldest SENT or AMBIGUOUS message (from when it became due).",
                          value=_age(now, oldest_unsettled)),
        GaugeMetricFamily("hexavox_queued_oldest_seconds",
                          "Age of the oldest message waiting in QUEUED for a dispatch worker.",
                          value=_age(now, oldest_queued)),
    ]


def _balances(session: Session, settings: Settings) -> list[Metric]:
    remaining = GaugeMetricFamily(
        "hexavox_merchant_units_remaining",
        "Units left (limit + credits - used) of the merchants with the least left, per channel "
        "(at most HEXAVOX_METRICS_MAX_MERCHANTS series).", labels=["merchant", "channel"])
    used = GaugeMetricFamily("hexavox_merchant_units_used", "Units used this period, same merchants as "
                             "hexavox_merchant_units_remaining.", labels=["merchant", "channel"])
    left = Balance.unit_limit + Balance.credits - Balance.used
    rows = session.execute(
        select(Merchant.tenant_id, Merchant.external_id, Balance.channel, left, Balance.used)
        .join(Merchant, Merchant.id == Balance.merchant_id).where(Merchant.active.is_(True))
        .order_by(left, Merchant.id, Balance.channel).limit(settings.metrics_max_merchants))
    for tenant_id, merchant, channel, units_left, units_used in rows:
        label = f"{tenant_id}/{merchant}"
        remaining.add_metric([label, channel], float(units_left))
        used.add_metric([label, channel], float(units_used))
    exhausted = session.scalar(select(func.count()).select_from(Balance).where(left <= 0)) or 0
    return [remaining, used, GaugeMetricFamily("hexavox_balances_exhausted",
                                               "Merchant channels with no units left.", value=float(exhausted))]


def _callbacks(session: Session) -> Metric:
    gauge = GaugeMetricFamily("hexavox_callbacks_stored",
                              "Outbound dlrUrl callbacks by state (PENDING waits or retries, FAILED gave up).",
                              labels=["state"])
    counts = {state.value: 0 for state in CallbackState}
    for state, count in session.execute(select(OutboundCallback.state, func.count())
                                        .group_by(OutboundCallback.state)):
        counts[str(state)] = int(count)
    for state, count in counts.items():
        gauge.add_metric([state], float(count))
    return gauge
