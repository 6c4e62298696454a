"""State of the `archive` agent: every topic's records into the ClickHouse archive, in batches (no Kafka I/O).

Rows are keyed by (topic, partition, offset) in the archive, so a batch written twice (Kafka redelivery after a
crash, or a retry after backpressure) never doubles a row: at-least-once delivery + idempotent writes.
Invalid messages are not archived here: the agent that reads their topic first sends them to the dead-letter
topic, which is archived like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sinks.base_sink import BaseSink
from sinks.exceptions import BackpressureError
from streams.transport.messages import RawMessage, parse_messages

__all__ = ["ArchiveAgentState"]

log = logging.getLogger(__name__)


class ArchiveAgentState:
    """:param sink: the batching sink (``sinks.ClickHouseSink``). :param max_wait_s: give up retrying a batch
    after this long (the agent then raises, the worker stops, and Kafka redelivers from the last commit).
    :param sleep: injected for tests."""

    def __init__(self, sink: BaseSink, max_wait_s: float = 600.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sink = sink
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.rows = 0
        self.skipped = 0

    def handle(self, msgs: list[RawMessage], now: float) -> int:
        """Archive one batch; retries on backpressure until written. Returns the rows handed to the sink."""
        items = []
        for m in msgs:
            good, _ = parse_messages([m], now, report=frozenset())
            if good and m.partition is not None and m.offset is not None:
                items.append((m.topic, m.partition, m.offset, good[0]))
            else:
                self.skipped += 1
        waited = 0.0
        while True:
            for topic, partition, offset, rec in items:
                self.sink.add(topic, partition, offset, rec)
            try:
                n = self.sink.flush()
                self.rows += n
                return n
            except BackpressureError as e:
                if waited >= self.max_wait_s:
                    raise
                log.warning("%s; %d rows waiting", e, len(items))
                self.sleep(e.retry_after)
                waited += e.retry_after
