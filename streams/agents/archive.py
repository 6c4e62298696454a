"""`archive`: every topic -> ClickHouse (batched, idempotent per topic/partition/offset), off the event loop."""

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
    async for events in stream.take_events(cfg.archive_batch, within=cfg.archive_within_s):
        msgs, now = raw_messages(events)
        with ARCHIVE_INSERT_LATENCY.time():
            ARCHIVE_ROWS.inc(await asyncio.to_thread(state.handle, msgs, now))
