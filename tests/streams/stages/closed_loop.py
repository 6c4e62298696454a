"""A live pipeline without Kafka for tests: the real agent states and instance managers, messages delivered
in batches whose cross-topic interleaving and delays are random (as Kafka and a busy machine make them), and
every published record kept in publish order (the archive)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from fleet.live.instance_manager import FleetManager
from fleet.live.simulated_engine import SimulatedEngineFactory
from streams.pipeline_config import PipelineConfig
from streams.records import EventRecord, PredictedRequest, RouteDecision, ScaleCommand
from streams.stages.control import RouteAgentState, ScaleAgentState
from streams.stages.density import DensityAgentState
from streams.stages.forecast import ForecastAgentState
from streams.transport.messages import RawMessage

CONTROL_INPUTS = ("predicted-requests", "instance-events", "completions", "forecasts")


@dataclass
class Archive:
    """Every record published, per topic, in publish (offset) order."""

    topics: dict[str, list[EventRecord]] = field(default_factory=lambda: defaultdict(list))
    late_inputs: int = 0  # decisions the fleet applied after their event time

    def add(self, rec: EventRecord) -> None:
        self.topics[rec.topic].append(rec)


def requests(n: int, services: tuple[str, ...], seed: int, rate: float = 4.0) -> list[PredictedRequest]:
    rng = random.Random(seed)
    t, out = 1000.0, []
    for k in range(n):
        t += rng.expovariate(rate)
        out.append(PredictedRequest(ts=t, request_id=f"r{k}", service=rng.choice(services),
                                    prompt_tokens=rng.randint(50, 3000), output_tokens=rng.randint(5, 600),
                                    predicted_tokens=float(rng.randint(20, 400)),
                                    predicted_p90_tokens=float(rng.randint(400, 800)), predictor="fallback"))
    return out


def run_closed_loop(cfg: PipelineConfig, reqs: list[PredictedRequest], seed: int, step_s: float = 0.5,
                    max_delay_steps: int = 4, fleet_lag_s: float | None = None) -> Archive:
    """Drive ``reqs`` through route + scale + density + forecast states and a simulated fleet whose event clock
    runs ``fleet_lag_s`` behind the replay (as ``ReplayClock`` does; default: more than any delivery delay, so
    that every decision reaches the fleet before its time)."""
    lag = (max_delay_steps + 2) * step_s * 2 if fleet_lag_s is None else fleet_lag_s
    rng = random.Random(seed)
    route, scale = RouteAgentState(cfg), ScaleAgentState(cfg)
    density = DensityAgentState(cfg.density_window_s, cfg.density_grace_s)
    forecast = ForecastAgentState(cfg.forecast_horizon, "last_value")
    fleet = FleetManager(SimulatedEngineFactory(cfg.engine, cold_start_s=cfg.cold_start_s))
    archive = Archive()
    inbox: list[tuple[int, RawMessage]] = []  # (step it becomes visible, message)
    offsets: dict[str, int] = defaultdict(int)
    last_visible: dict[str, int] = defaultdict(int)

    def publish(recs: list[EventRecord], step: int) -> None:
        for rec in recs:
            if rec.topic not in ("predicted-requests", "instance-events", "completions", "forecasts", "routes",
                                 "scale-commands"):
                continue
            archive.add(rec)
            off = offsets[rec.topic]
            offsets[rec.topic] += 1
            # a random delay, but never overtaking an earlier message of the same topic (a partition's order)
            visible_at = max(last_visible[rec.topic], step + rng.randint(0, max_delay_steps))
            last_visible[rec.topic] = visible_at
            inbox.append((visible_at, RawMessage(rec.topic, rec.service.encode(), rec.to_json(), 0, off)))  # type: ignore[attr-defined]

    pending = list(reqs)
    t = reqs[0].ts
    end = reqs[-1].ts + 900.0 + lag
    step = 0
    while t < end:
        while pending and pending[0].ts <= t:
            publish([pending.pop(0)], step)
        visible = [m for s, m in inbox if s <= step]
        inbox = [(s, m) for s, m in inbox if s > step]
        # per topic in offset order (a partition's order), topics interleaved at random, in random batches
        by_topic: dict[str, list[RawMessage]] = defaultdict(list)
        for m in sorted(visible, key=lambda m: (m.topic, m.offset)):
            by_topic[m.topic].append(m)
        merged: list[RawMessage] = []
        while any(by_topic.values()):
            merged.append(by_topic[rng.choice([k for k, v in by_topic.items() if v])].pop(0))
        while merged:
            size = rng.randint(1, 8)
            batch, merged = merged[:size], merged[size:]
            ctrl = [m for m in batch if m.topic in CONTROL_INPUTS]
            for rec in route.handle([m for m in ctrl if m.topic != "forecasts"], now=0.0) + scale.handle(ctrl, 0.0):
                if isinstance(rec, RouteDecision | ScaleCommand):
                    publish([rec], step)
                    fleet.offer(rec)
            done = [m for m in batch if m.topic == "completions"]
            windows = density.handle(done, now=0.0)
            publish(forecast.handle([RawMessage("token-density", w.service.encode(), w.to_json())  # type: ignore[attr-defined]
                                     for w in windows], now=0.0), step)
        publish(fleet.advance(t - lag), step)
        t += step_s
        step += 1
    archive.late_inputs = fleet.counters.late_inputs
    return archive
