"""What the live agents run: policy, predictor, windows, cadences. One frozen config, passed to worker
processes as JSON in ``PRESERVE_PIPELINE_CONFIG`` (set by ``preserve worker`` / ``preserve demo``), so that every
worker of a deployment runs the same policy and the offline ``preserve eval`` can be given the same values.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any, Literal

from streams.policies.control_settings import ControlSettings
from streams.transport.event_skew import SkewSettings

__all__ = ["PipelineConfig", "ENV_VAR", "pipeline_config", "AGENTS"]

ENV_VAR = "PRESERVE_PIPELINE_CONFIG"
AGENTS = ("predict", "route", "density", "forecast", "scale", "archive")
RETIRED = frozenset({"predict_within_s", "route_within_s"})  # batch timers, replaced by ready batches


@dataclass(frozen=True)
class PipelineConfig(ControlSettings):
    """The live pipeline's settings: the control core's :class:`ControlSettings` plus the agents' own."""

    policy: str = field(default="preserve:preserve", metadata={"help": "router:scaler spec (policy registry)"})
    # Agents take a batch as soon as nothing more is queued (streams/transport/ready_batches.py): batches grow with the
    # load by themselves, up to these sizes, and no event waits for a timer.
    predict_batch: int = field(default=256, metadata={"help": "most requests per predictor call"})
    route_batch: int = field(default=512, metadata={"help": "most events per route/scale agent iteration"})
    # The encoder must never make routing wait: on a 2-core CPU it serves ~200-380 requests/s, so a burst would queue.
    predict_max_lag_s: float = field(default=1.0, metadata={"help": "a batch whose oldest request waited longer "
                                                           "than this (Kafka time to now) gets the fallback's answers, "
                                                           "flagged; 0 = never"})
    # The predictor conditions on the serving model, requests carry a service name (models/request_load/serving.py)
    predictor_services: str = field(default="", metadata={
        "help": "service -> serving-model map of the predictor: 'svc=model,svc2=model2', a JSON object or @file.json; "
                "services with no entry (and not themselves a known model) are warned about and flagged"})
    snapshot_every_s: float = field(default=10.0, metadata={"help": "event seconds between routing tables"})
    archive_batch: int = field(default=2000, metadata={"help": "most rows per ClickHouse insert"})
    archive_within_s: float = field(default=0.5, metadata={"help": "wall seconds an archive batch may wait"})
    # Where requests enter (the predict stage), event times far from the stream's own are dead-lettered with the reason
    # (streams/transport/event_skew.py): one client's clock must not move every service's windows and fleet clock.
    event_clock: Literal["stream", "wall"] = field(default="stream", metadata={
        "help": "the stream's event time that requests are checked against: 'stream' = learned from the events "
                "(median offset of the recent ones; any replay epoch), 'wall' = this worker's wall clock (a "
                "gateway stamping wall-clock time)"})
    event_speedup: float = field(default=1.0, metadata={
        "help": "event seconds per wall second of the request stream (1 for a gateway; a replay's --speedup)"})
    event_max_ahead_s: float = field(default=300.0, metadata={
        "help": "requests more than this ahead of the stream's event time are dead-lettered (0 = no limit)"})
    event_max_behind_s: float = field(default=3600.0, metadata={
        "help": "requests more than this behind the stream's event time are dead-lettered (0 = no limit)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.predict_batch < 1 or self.route_batch < 1 or self.archive_batch < 1:
            raise ValueError("batch sizes must be >= 1")
        if self.snapshot_every_s <= 0:
            raise ValueError("snapshot_every_s must be positive")
        self.skew_settings()  # validates the event clock settings
        if self.time_scale != 1.0:
            raise ValueError("time_scale compresses a recorded trace for `preserve eval`; the live pipeline runs in "
                             "its events' own time (replay faster with --speedup, which keeps event time)")

    def request_predictor(self) -> str:
        """The predictor the predict stage runs: the policy's router ``predictor=`` if it sets one (as the offline
        harness reads it), else ``predictor``."""
        from streams.policies.builder import predictor_for
        from streams.policies.policy_registry import parse_policy

        return predictor_for(parse_policy(self.policy), self.predictor)

    def skew_settings(self) -> SkewSettings:
        """The window requests must fall in around the stream's event time (the predict stage's guard)."""
        return SkewSettings(self.event_clock, self.event_speedup, self.event_max_ahead_s, self.event_max_behind_s)

    def for_replay(self, speedup: float) -> PipelineConfig:
        """The settings for a replay at ``speedup``: a replay declares its own clock (the stream's, at its speed)."""
        from dataclasses import replace

        return replace(self, event_clock="stream", event_speedup=speedup)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PipelineConfig:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        retired = sorted(set(raw) & RETIRED)
        if retired:
            raise ValueError(f"pipeline settings {retired} are retired: agents now take a batch as soon as nothing "
                             "more is queued (streams/transport/ready_batches.py); remove them")
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown pipeline settings: {sorted(unknown)}")
        return cls(**raw)


@lru_cache(maxsize=1)
def pipeline_config() -> PipelineConfig:
    """The config of this worker process (``PRESERVE_PIPELINE_CONFIG``, or the defaults)."""
    text = os.environ.get(ENV_VAR)
    return PipelineConfig.from_json(text) if text else PipelineConfig()
