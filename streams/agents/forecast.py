"""`forecast`: token-density windows -> forecasts (per service, per target), off the event loop."""

from __future__ import annotations

import asyncio

from streams.agents.channels import publish_all, raw_messages, raw_topic
from streams.app import app
from streams.forecast_state import ForecastAgentState
from streams.pipeline_config import pipeline_config

cfg = pipeline_config()
state = ForecastAgentState(cfg.forecast_horizon, cfg.forecast_model)


@app.agent(raw_topic("token-density"))
async def forecast(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_events(64, within=cfg.route_within_s):
        msgs, now = raw_messages(events)
        await publish_all(await asyncio.to_thread(state.handle, msgs, now))  # a refit takes seconds
