"""`predict`: requests -> predicted-requests, in batches (one predictor call per batch)."""

from __future__ import annotations

import asyncio

from streams.agents.channels import publish_all, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.predict_state import PredictAgentState

cfg = pipeline_config()
state = PredictAgentState(cfg.predictor)


@app.agent(raw_topic("requests"))
async def predict(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_events(cfg.predict_batch, within=cfg.predict_within_s):
        msgs, now = raw_messages(events)
        await publish_all(await asyncio.to_thread(state.handle, msgs, now))  # the encoder runs off the loop
