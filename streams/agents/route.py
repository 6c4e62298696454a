"""`route`: predicted-requests + instance-events + completions -> routes (+ routing-table snapshots).

One merged stream per worker, so a service's requests and its fleet's events are applied in one order.
A request pending for a READY instance keeps its input message un-acked until it is routed (the plan of
``RouteAgentState.take_acks``), so a crash meanwhile does not lose it: see ``streams/stages/control.py``.
"""

from __future__ import annotations

from faust.types import EventT

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.stages.control import DeferredAcks, RouteAgentState

cfg = pipeline_config()
state = RouteAgentState(cfg)
held: DeferredAcks[EventT] = DeferredAcks()  # Faust events of pending requests


@app.agent(raw_topic("predicted-requests", "instance-events", "completions"))
async def route(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(cfg.route_batch):
        msgs, now = raw_messages(events)
        out = state.handle(msgs, now)
        await publish_then_ack("route", stream, held.settle(events, msgs, state.take_acks()), out)
