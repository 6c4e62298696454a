"""`scale`: arrivals, completions, instance events and forecasts -> scale-commands (with the reason)."""

from __future__ import annotations

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.stages.control import ScaleAgentState

cfg = pipeline_config()
state = ScaleAgentState(cfg)


@app.agent(raw_topic("predicted-requests", "instance-events", "completions", "forecasts"))
async def scale(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(cfg.route_batch):
        msgs, now = raw_messages(events)
        await publish_then_ack("scale", stream, events, state.handle(msgs, now))
