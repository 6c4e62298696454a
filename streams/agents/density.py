"""`density`: completions -> token-density (tumbling windows in event time, same rules as offline)."""

from __future__ import annotations

from streams.agents.channels import publish_all, raw_messages, raw_topic
from streams.app import app
from streams.density_state import DensityAgentState
from streams.pipeline_config import pipeline_config

cfg = pipeline_config()
state = DensityAgentState(cfg.density_window_s, cfg.density_grace_s)


@app.agent(raw_topic("completions"))
async def density(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_events(cfg.route_batch, within=cfg.route_within_s):
        msgs, now = raw_messages(events)
        await publish_all(state.handle(msgs, now))
