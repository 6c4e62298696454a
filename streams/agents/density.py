"""`density`: completions -> token-density (tumbling windows in event time, same rules as offline).

Open windows are stored per service in the changelog-backed ``density_windows`` table after every batch and
restored from it after a restart, so a kill -9 loses no completion (see ``streams/stages/density.py``).
"""

from __future__ import annotations

from streams.agents.channels import publish_then_ack, raw_messages, raw_topic
from streams.app import app
from streams.pipeline_config import pipeline_config
from streams.stages.density import DensityAgentState, Snapshot
from streams.transport.tables import density_windows

cfg = pipeline_config()
state = DensityAgentState(cfg.density_window_s, cfg.density_grace_s)


def _stored(service: str) -> Snapshot | None:
    return density_windows.get(service.encode())


@app.agent(raw_topic("completions"))
async def density(stream):  # type: ignore[no-untyped-def]
    async for events in stream.take_ready(cfg.route_batch):
        msgs, now = raw_messages(events)
        out = state.handle(msgs, now, _stored)
        for service, snap in state.take_snapshots().items():
            density_windows[service.encode()] = snap
        await publish_then_ack("density", stream, events, out)
