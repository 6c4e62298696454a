"""Raw-bytes topics and the one way agents publish records.

Agents read raw bytes and parse them themselves (``streams.dead_letters``), so a malformed message becomes a
dead letter and never an exception inside Faust's deserializer.
"""

from __future__ import annotations

import time

import faust

from streams.app import app
from streams.messages import RawMessage
from streams.records import DeadLetter, EventRecord
from streams.settings import load_settings

__all__ = ["raw_topic", "publish", "publish_all", "raw_messages"]

_topics: dict[tuple[str, ...], faust.TopicT] = {}


def raw_topic(*names: str) -> faust.TopicT:
    """A Faust topic over the physical names of the logical ``names`` (several: one merged, ordered stream)."""
    if names not in _topics:
        kafka = load_settings().kafka
        _topics[names] = app.topic(*(kafka.topic(n) for n in names), key_type=bytes, value_type=bytes,
                                   key_serializer="raw", value_serializer="raw")
    return _topics[names]


def _key(rec: EventRecord) -> bytes | None:
    if isinstance(rec, DeadLetter):
        return rec.key.encode() if rec.key else None
    service = getattr(rec, "service", None)
    return service.encode() if service else None


async def publish(rec: EventRecord) -> None:
    """Send one record to its topic, keyed by service (requests and routes of a service share a partition)."""
    await raw_topic(rec.topic).send(key=_key(rec), value=rec.to_json())


async def publish_all(recs: list[EventRecord]) -> None:
    for rec in recs:
        await publish(rec)


def raw_messages(events: list[faust.EventT]) -> tuple[list[RawMessage], float]:
    """The Kafka coordinates and bytes of a batch of events, and the wall clock (for dead letters)."""
    prefix = load_settings().kafka.topic_prefix
    msgs = [RawMessage(e.message.topic.removeprefix(prefix), e.message.key, e.value, e.message.partition,
                       e.message.offset) for e in events]
    return msgs, time.time()
