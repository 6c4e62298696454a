"""The Faust edge of the metrics: a worker's heartbeat, readiness and consumer lag, and what its agents publish.

:func:`install` is called by ``streams/app.py`` when ``PRESERVE_METRICS_PORT`` is set (``preserve worker
--metrics-port``): the worker is ready (``/readyz``) once its first partition assignment has completed (table
recovery included) and while no rebalance runs; a timer beats the liveness heartbeat from the event loop, so a
wedged loop turns ``/livez`` red, and sets the lag gauge of every assigned partition. :func:`observe_published`
counts the records an agent publishes (decisions, their latency, prediction sources, scale reasons, dead letters);
it costs nothing where no metrics server runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streams.records import DeadLetter, EventRecord, PredictedRequest, RouteDecision, ScaleCommand
from streams.transport import metrics_server as m

__all__ = ["install", "observe_published", "enabled", "LAG_EVERY_S"]

log = logging.getLogger(__name__)
LAG_EVERY_S = 1.0  # heartbeat + lag refresh; a Prometheus scrape interval is 5-15 s
_state = {"enabled": False}


def enabled() -> bool:
    return _state["enabled"]


def observe_published(agent: str, recs: Sequence[EventRecord]) -> None:
    """Count ``agent``'s output records into the ``preserve_*`` series (no-op while metrics are off)."""
    if not _state["enabled"] or not recs:
        return
    topics: dict[str, int] = {}
    for rec in recs:
        topics[rec.topic] = topics.get(rec.topic, 0) + 1
        if isinstance(rec, RouteDecision):
            m.DECISIONS.labels(rec.service).inc()
            if rec.arrival_ts is not None:
                m.DECISION_LATENCY.observe(max(0.0, rec.ts - rec.arrival_ts))
        elif isinstance(rec, PredictedRequest):
            m.PREDICTIONS.labels(rec.predictor.split("(", 1)[0]).inc()
        elif isinstance(rec, ScaleCommand):
            m.SCALE_ACTIONS.labels(rec.service, m.reason_label(rec.reason)).inc()
        elif isinstance(rec, DeadLetter):
            m.DEAD_LETTERS.labels(rec.source_topic, m.reason_label(rec.reason)).inc()
    for topic, n in topics.items():
        m.RECORDS_OUT.labels(agent, topic).inc(n)


def _lag(app: Any) -> None:
    consumer = app.consumer
    group = app.conf.id
    seen: set[tuple[str, str]] = set()
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        pos = consumer._read_offset.get(tp)  # noqa: SLF001  (last offset handed to the streams; no public getter)
        if pos is None:
            pos = consumer._committed_offset.get(tp)  # noqa: SLF001
            pos = pos - 1 if pos is not None else -1
        m.CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, high - (pos + 1)))
        seen.add((tp.topic, str(tp.partition)))
    for labels in list(m.CONSUMER_LAG._metrics):  # noqa: SLF001  (drop partitions revoked from this member)
        if labels[0] == group and (labels[1], labels[2]) not in seen:
            m.CONSUMER_LAG.remove(*labels)


def install(app: Any) -> None:
    """Wire ``app``'s signals and a timer into the process's :data:`metrics_server.health` and gauges."""
    _state["enabled"] = True
    m.health.require("partitions_assigned", "not_rebalancing")

    @app.on_partitions_revoked.connect
    async def _revoked(*_: Any, **__: Any) -> None:  # the first step of every rebalance (sender, revoked)
        m.health.set_ready("not_rebalancing", False)

    @app.on_rebalance_complete.connect
    async def _assigned(*_: Any, **__: Any) -> None:  # sent once the assigned tables are recovered
        _state["assigned"] = True
        m.health.set_ready("partitions_assigned", True)
        m.health.set_ready("not_rebalancing", True)

    @app.timer(LAG_EVERY_S)
    async def _probe() -> None:
        m.health.beat()
        if _state.get("assigned"):
            m.health.set_ready("not_rebalancing", not app.rebalancing)
        try:
            _lag(app)
        except Exception as e:  # a metric must never stop the worker  # noqa: BLE001
            log.debug("consumer lag not available: %s", e)
