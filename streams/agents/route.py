"""`route`: predicted-requests + instance-events + completions -> routes (+ routing-table snapshots).

One merged stream per worker, so a service's requests and its fleet's events are applied in one order.
"""

from __future__ import annotations

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.control_state import RouteAgentState
from streams.pipeline_config import pipeline_config

cfg = pipeline_config()
state = RouteAgentState(cfg)


@app.agent(raw_topic("predicted-requests", "instance-events", "completions"))
async def route(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(cfg.route_batch):
        msgs, now = raw_messages(events)
        await publish_then_ack("route", stream, events, state.handle(msgs, now))
