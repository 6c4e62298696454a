"""`forecast`: token-density windows -> forecasts (per service, per target), off the event loop."""

from __future__ import annotations

import asyncio

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.stages.forecast import ForecastAgentState

cfg = pipeline_config()
state = ForecastAgentState(cfg.forecast_horizon, cfg.forecast_model)


@app.agent(raw_topic("token-density"))
async def forecast(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(64):
        msgs, now = raw_messages(events)
        out = await asyncio.to_thread(state.handle, msgs, now)  # a refit takes seconds
        await publish_then_ack("forecast", stream, events, out)
