"""Batching sink lifecycle (after quix-streams' ``BatchingSink``): ``add`` buffers per (topic, partition),
``flush`` hands each batch to ``write``, and batches are cleared in ``finally`` whatever ``write`` does.

Subclasses implement only :meth:`BaseSink.write`. The first error from ``write`` (e.g.
:class:`~sinks.exceptions.BackpressureError`) stops the flush and *all* buffered batches are dropped: the caller
re-adds them or re-consumes from its last committed offset, and since writes are idempotent per
(topic, partition, offset), re-adding items that were already written is harmless.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from streams.records import EventRecord

__all__ = ["SinkItem", "SinkBatch", "BaseSink"]


@dataclass(frozen=True)
class SinkItem:
    partition: int
    offset: int
    record: EventRecord


@dataclass
class SinkBatch:
    topic: str
    partition: int
    items: list[SinkItem] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.items)


class BaseSink(abc.ABC):
    """Buffers items per (topic, partition) until :meth:`flush`."""

    def __init__(self) -> None:
        self._batches: dict[tuple[str, int], SinkBatch] = {}

    def add(self, topic: str, partition: int, offset: int, record: EventRecord) -> None:
        key = (topic, partition)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = SinkBatch(topic, partition)
        batch.items.append(SinkItem(partition, offset, record))

    @property
    def buffered(self) -> int:
        return sum(b.size for b in self._batches.values())

    def flush(self) -> int:
        """Write every buffered batch; return the number of items handed to ``write``."""
        written = 0
        try:
            for batch in list(self._batches.values()):
                self.write(batch)
                written += batch.size
        finally:
            self._batches.clear()
        return written

    @abc.abstractmethod
    def write(self, batch: SinkBatch) -> None:
        """Persist one batch of one (topic, partition). Raise BackpressureError to ask for a retry later."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing
        """Release resources (nothing buffered is written: call :meth:`flush` first)."""
