"""Raw-bytes topics and the one way agents publish records and ack their input.

Agents read raw bytes and parse them themselves (``streams.transport.dead_letters``), so a malformed message becomes a
dead letter and never an exception inside Faust's deserializer.

Agents take batches with ``stream.take_ready`` (not acked) and hand each batch's output to
:func:`publish_then_ack`, which queues it on the agent's librdkafka producer
(:class:`streams.transport.batch_publisher.BatchPublisher`, not Faust's per-message ``topic.send``) and acks the input
events only once the broker has stored every output record. Faust commits acked offsets only, so a crash never
commits an input whose outputs were lost (at-least-once), yet the agent does not wait for the broker between
batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import cache, partial

import faust

from streams.app import app, selected_agents
from streams.records import EventRecord
from streams.settings import load_settings
from streams.transport.batch_publisher import BatchPublisher, PublishError
from streams.transport.kafka_wait import retry_with_backoff
from streams.transport.messages import RawMessage
from streams.transport.worker_probes import observe_published

__all__ = ["raw_topic", "publish_then_ack", "raw_messages"]

log = logging.getLogger(__name__)

_topics: dict[tuple[str, ...], faust.TopicT] = {}
_acking: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


def raw_topic(*names: str) -> faust.TopicT:
    """A Faust topic over the physical names of the logical ``names`` (several: one merged, ordered stream)."""
    if names not in _topics:
        kafka = load_settings().kafka
        _topics[names] = app.topic(*(kafka.topic(n) for n in names), key_type=bytes, value_type=bytes,
                                   key_serializer="raw", value_serializer="raw")
    return _topics[names]


PUBLISHING_AGENTS = frozenset({"predict", "route", "density", "forecast", "scale"})


@cache
def _publisher(agent: str) -> BatchPublisher:
    return BatchPublisher(load_settings().kafka)


@app.task
async def _connect_publishers() -> None:
    """Connect every agent's producer when the worker starts. Why: a producer made at an agent's first batch
    delayed that batch by its connection set-up, e.g. the scale agent's first command (the service's initial
    instances) reached the fleet after the first routes, and the fleet ran the demo's first requests short of
    instances."""
    for agent in sorted(PUBLISHING_AGENTS.intersection(selected_agents())):
        # Retried, never raised: a broker down at start-up must not crash the worker (bounded lines meanwhile).
        await asyncio.to_thread(retry_with_backoff, partial(_publisher(agent).connect, 10.0), f"{agent} publisher",
                                log.warning)


async def _ack_when_stored(stream: faust.StreamT, events: Sequence[faust.EventT], stored: asyncio.Future[None]) -> None:
    try:
        await stored
    except PublishError as e:  # the broker refused records for good: stop the worker, never ack this input
        log.critical("outputs not stored, stopping the worker without acking their input: %s", e)
        await app.crash(e)
        return
    for event in events:
        await stream.ack(event)


async def publish_then_ack(agent: str, stream: faust.StreamT, events: Sequence[faust.EventT],
                           recs: Sequence[EventRecord]) -> None:
    """Queue ``agent``'s records (each to its topic, keyed by service); ack ``events`` once all are stored."""
    observe_published(agent, recs)
    stored = await _publisher(agent).publish(recs)
    task = asyncio.ensure_future(_ack_when_stored(stream, events, stored))
    _acking.add(task)
    task.add_done_callback(_acking.discard)


def raw_messages(events: Sequence[faust.EventT]) -> tuple[list[RawMessage], float]:
    """The Kafka coordinates and bytes of a batch of events, and the wall clock (for dead letters)."""
    prefix = load_settings().kafka.topic_prefix
    msgs = [RawMessage(e.message.topic.removeprefix(prefix), e.message.key, e.value, e.message.partition,
                       e.message.offset, e.message.timestamp) for e in events]
    return msgs, time.time()
