"""`predict`: requests -> predicted-requests, in batches (one predictor call per batch); completions feed the
per-service online correction of the predictions (models/request_load/online.py)."""

from __future__ import annotations

import asyncio

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.stages.predict import PredictAgentState

cfg = pipeline_config()
state = PredictAgentState(cfg.request_predictor(), cfg.predict_max_lag_s, cfg.predictor_services,
                          cfg.predictor_online_window)


@app.agent(raw_topic("requests", "completions"))  # completions teach the online correction
async def predict(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(cfg.predict_batch):
        msgs, now = raw_messages(events)
        out = await asyncio.to_thread(state.handle, msgs, now) if state.off_loop else state.handle(msgs, now)
        await publish_then_ack("predict", stream, events, out)
