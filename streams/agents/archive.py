"""`archive`: every topic -> ClickHouse (batched, idempotent per topic/partition/offset), off the event loop.

A batch is acked only once its rows are written (``noack_take`` + explicit acks), so Faust never commits an
offset whose row is not in the archive. Why not ``take_events``: it acks a batch in a ``finally``, also when the
agent is cancelled mid-write (a graceful stop or a rebalance), so the stop committed offsets of rows never
written and the next owner of the partition skipped them (issue 21: 10 completions missing after one of two
archive workers stopped with SIGTERM).
"""

from __future__ import annotations

import asyncio

from sinks.clickhouse_sink import ClickHouseSink
from streams.agents.channels import raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.records import RECORD_TYPES
from streams.settings import load_settings
from streams.stages.archive import ArchiveAgentState
from streams.transport.metrics_server import ARCHIVE_INSERT_LATENCY, ARCHIVE_ROWS

cfg = pipeline_config()
settings = load_settings()
state = ArchiveAgentState(ClickHouseSink(settings.clickhouse_dsn(), settings.clickhouse.store_prompts))


@app.agent(raw_topic(*RECORD_TYPES))
async def archive(stream):  # type: ignore[no-untyped-def]
    async for events in stream.noack_take(cfg.archive_batch, within=cfg.archive_within_s):
        msgs, now = raw_messages(events)
        with ARCHIVE_INSERT_LATENCY.time():
            ARCHIVE_ROWS.inc(await asyncio.to_thread(state.handle, msgs, now))
        for event in events:  # written: now the offsets may be committed
            await stream.ack(event)
