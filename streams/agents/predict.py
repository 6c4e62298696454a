"""`predict`: requests -> predicted-requests, in batches (one predictor call per batch); `predict_feedback`:
completions -> the per-service online correction of the predictions (models/request_load/online.py).

Two agents, not one stream over both topics: a stream over two topics made every predict batch wait for the other
topic's fetch (p99 decision latency 28 ms instead of 18 ms at 500 requests/s, `bench/bench_pipeline.py`)."""

from __future__ import annotations

import asyncio

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.stages.predict import PredictAgentState

cfg = pipeline_config()
state = PredictAgentState(cfg.request_predictor(), cfg.predict_max_lag_s, cfg.predictor_services,
                          cfg.predictor_online_window)


@app.agent(raw_topic("requests"))
async def predict(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(cfg.predict_batch):
        msgs, now = raw_messages(events)
        out = await asyncio.to_thread(state.handle, msgs, now) if state.off_loop else state.handle(msgs, now)
        await publish_then_ack("predict", stream, events, out)


if state.online is not None:

    @app.agent(raw_topic("completions"))
    async def predict_feedback(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_ready(cfg.route_batch):
            msgs, now = raw_messages(events)
            state.learn(msgs, now)
            for event in events:  # nothing to publish: done once learned
                await stream.ack(event)
