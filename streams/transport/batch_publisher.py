"""Publishing an agent's output batches with librdkafka; a batch counts as stored only when the broker has it all.

Why not Faust's ``topic.send``: it costs a future, a callback and an aiokafka batch append per message in the
worker's event loop, and aiokafka writes every produce request from Python; on the routing path that was about
40% of the worker's CPU. librdkafka batches and sends from its own C threads, so a record costs one ``produce``
call in the loop and one delivery callback on the publisher's poll thread.

Why a future per batch: the agent must not ack its input before the outputs are stored (at-least-once: Faust
commits acked offsets), but it need not wait for that either. :meth:`BatchPublisher.publish` queues the batch and
returns a future that completes when the broker has acknowledged every record of it; the caller acks the input
then, while it already works on the next batch. At most ``max_in_flight`` batches are outstanding, so a slow
broker slows the agent down instead of filling memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.records import DeadLetter, EventRecord
from streams.settings import KafkaSettings
from streams.transport.producer_helper import PRODUCER_DEFAULTS

__all__ = ["BatchPublisher", "PublishError", "record_key", "PUBLISHER_CONFIG"]

log = logging.getLogger(__name__)

PUBLISHER_CONFIG: dict[str, Any] = {
    # murmur2 keys (the partitions Faust and the Java client use), idempotent and so ordered per partition, and
    # linger 1 ms: an agent produces a whole batch within a millisecond, so it leaves in one request.
    **PRODUCER_DEFAULTS,
    # Retry a broker outage for as long as it lasts rather than fail a record: its batch is not acked meanwhile,
    # so the agent stalls after max_in_flight batches and resumes with the broker (as under Faust's producer).
    "message.timeout.ms": 0,
}
POLL_S = 0.1  # how long one poll of the delivery thread may block (bounds how late close() is noticed)


class PublishError(RuntimeError):
    """The broker refused records for good (e.g. a record over the size limit); their batch must not be acked."""


def record_key(rec: EventRecord) -> bytes | None:
    """The Kafka key of a record: its service (requests and routes of a service share a partition)."""
    if isinstance(rec, DeadLetter):
        return rec.key.encode() if rec.key else None
    service = getattr(rec, "service", None)
    return service.encode() if service else None


class _Batch:
    """Delivery count of one batch; its callback runs on the poll thread, the future lives on the loop."""

    __slots__ = ("remaining", "failed", "future", "loop")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.remaining = size
        self.failed: list[str] = []
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed.append(f"{msg.topic()}: {err.str()}")
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self.future.done():  # cancelled by a stopping agent
            return
        if self.failed:
            self.future.set_exception(PublishError(f"{len(self.failed)} records refused by the broker, first: "
                                                   f"{self.failed[0]}"))
        else:
            self.future.set_result(None)


class BatchPublisher:
    """One librdkafka producer (and delivery thread) per agent.

    :param kafka: connection settings and topic prefix.
    :param config: librdkafka settings over :data:`PUBLISHER_CONFIG`.
    :param max_in_flight: batches queued but not yet stored before :meth:`publish` waits for the oldest.
    """

    def __init__(self, kafka: KafkaSettings, config: dict[str, Any] | None = None, max_in_flight: int = 8) -> None:
        self._kafka = kafka
        self._topics: dict[str, str] = {}
        self._producer = Producer({**kafka.confluent_config(), **PUBLISHER_CONFIG, **(config or {})})
        self._in_flight: deque[asyncio.Future[None]] = deque()
        self._max_in_flight = max_in_flight
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="batch-publisher-deliveries", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(POLL_S)

    def _topic(self, logical: str) -> str:
        name = self._topics.get(logical)
        if name is None:
            name = self._topics[logical] = self._kafka.topic(logical)
        return name

    async def publish(self, recs: Sequence[EventRecord]) -> asyncio.Future[None]:
        """Queue ``recs`` (each to its topic, keyed by service) and return the future of their storage: it
        completes once the broker has every one of them, or fails with :class:`PublishError`."""
        while len(self._in_flight) >= self._max_in_flight:
            await asyncio.wait([self._in_flight.popleft()])  # a failure is its owner's to handle, not raised here
        batch = _Batch(len(recs), asyncio.get_running_loop())
        if not recs:
            batch.future.set_result(None)
            return batch.future
        produce, on_delivery = self._producer.produce, batch.on_delivery
        for rec in recs:
            topic, key, value = self._topic(rec.topic), record_key(rec), rec.to_json()
            while True:
                try:
                    produce(topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:  # librdkafka's local queue is full: give the delivery thread time
                    await asyncio.sleep(0.005)
        self._in_flight = deque(f for f in self._in_flight if not f.done())
        self._in_flight.append(batch.future)
        return batch.future

    def connect(self, timeout_s: float = 30.0) -> None:
        """Connect and fetch metadata now (blocking), so the first batch does not wait for it."""
        self._producer.list_topics(timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is queued (up to ``timeout_s``) and stop the delivery thread; returns records left."""
        left = int(self._producer.flush(timeout_s))
        self._closed.set()
        self._poller.join(POLL_S * 5)
        return left
