"""The archive sink: event records -> one ClickHouse table per topic (embedded Parquet archive or server)."""

from __future__ import annotations

import logging
import time

from sinks.base_sink import BaseSink, SinkBatch
from sinks.client import Store, mask_dsn, open_store
from sinks.schema import all_schemas, record_row

__all__ = ["ClickHouseSink"]

log = logging.getLogger(__name__)


class ClickHouseSink(BaseSink):
    """Batching sink writing rows idempotently per (topic, partition, offset).

    Usage (e.g. in the ``archive`` agent): ``sink.add(topic, partition, offset, record)`` for each message,
    then ``sink.flush()`` every batch; on :class:`~sinks.exceptions.BackpressureError` sleep ``retry_after``
    and add the same items again (they are dropped on failure; re-adding never duplicates rows).

    :param dsn: ``chdb:///path`` (embedded Parquet archive) or ``http(s)://user:pw@host:8123/db``.
    :param store_prompts: archive prompt text (default: only its hash and length).
    :param store: an already-open store (tests); by default opened from ``dsn`` with its schema created.
    """

    def __init__(self, dsn: str, store_prompts: bool = False, store: Store | None = None) -> None:
        super().__init__()
        self.dsn_masked = mask_dsn(dsn)
        self.store_prompts = store_prompts
        self.store = store or open_store(dsn)
        self.schemas = all_schemas()
        self.rows_written = 0

    def write(self, batch: SinkBatch) -> None:
        schema = self.schemas[batch.topic]
        rows = [record_row(schema, it.record, it.partition, it.offset, self.store_prompts) for it in batch.items]
        t0 = time.perf_counter()
        n = self.store.insert(schema, rows, batch.partition)
        self.rows_written += n
        log.debug("archived %d/%d rows of %s[%d] to %s in %.3f s", n, len(rows), batch.topic, batch.partition,
                  self.dsn_masked, time.perf_counter() - t0)

    def close(self) -> None:
        self.store.close()
