"""What the live agents run: policy, predictor, windows, cadences. One frozen config, passed to worker
processes as JSON in ``PRESERVE_PIPELINE_CONFIG`` (set by ``preserve worker`` / ``preserve demo``), so that every
worker of a deployment runs the same policy and the offline ``preserve eval`` can be given the same values.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

__all__ = ["PipelineConfig", "ENV_VAR", "pipeline_config", "AGENTS"]

ENV_VAR = "PRESERVE_PIPELINE_CONFIG"
AGENTS = ("predict", "route", "density", "forecast", "scale", "archive")
RETIRED = frozenset({"predict_within_s", "route_within_s"})  # batch timers, replaced by ready batches


@dataclass(frozen=True)
class PipelineConfig:
    policy: str = field(default="preserve:preserve", metadata={"help": "router:scaler spec (policy registry)"})
    predictor: str = field(default="fallback", metadata={"help": "request-load predictor spec (get_predictor)"})
    # Agents take a batch as soon as nothing more is queued (streams/ready_batches.py): batches grow with the
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
    predictor_online_window: int = field(default=256, metadata={
        "help": "completions per service the predictor's online correction learns from (0 = off)"})
    snapshot_every_s: float = field(default=10.0, metadata={"help": "event seconds between routing tables"})
    density_window_s: float = field(default=60.0, metadata={"help": "token-density window (event seconds)"})
    density_grace_s: float = field(default=30.0, metadata={"help": "late completions still counted (event s)"})
    forecast_horizon: int = field(default=3, metadata={"help": "windows forecast ahead"})
    forecast_model: str = field(default="mlstm", metadata={"help": "forecaster (mlstm, lstm, ewma, last_value, ...)"})
    # Fleet and policy settings: the same names and defaults as the offline harness (fleet.harness.EvalConfig),
    # so a live run and `preserve eval` of the same trace use the same fleet.
    instances: int = field(default=4, metadata={"help": "warm instances a service starts with (unless the "
                                                        "scaler sets initial_instances)"})
    min_instances: int = field(default=1, metadata={"help": "fewest provisioned instances"})
    max_instances: int = field(default=8, metadata={"help": "most provisioned instances"})
    freeze_s: float = field(default=60.0, metadata={"help": "no scaling action for this long after one"})
    engine: str = field(default="llama2-7b-h100", metadata={"help": "engine preset of every instance"})
    cold_start_s: float | None = field(default=None, metadata={"help": "override the preset's cold start"})
    slo_ttft_s: float = field(default=1.0, metadata={"help": "TTFT SLO in seconds"})
    slo_tpot_s: float = field(default=0.1, metadata={"help": "TPOT SLO in seconds"})
    seed: int = field(default=0, metadata={"help": "seed of randomised routers"})
    archive_batch: int = field(default=2000, metadata={"help": "most rows per ClickHouse insert"})
    archive_within_s: float = field(default=0.5, metadata={"help": "wall seconds an archive batch may wait"})

    def __post_init__(self) -> None:
        if self.predict_batch < 1 or self.route_batch < 1 or self.archive_batch < 1:
            raise ValueError("batch sizes must be >= 1")
        if min(self.snapshot_every_s, self.density_window_s) <= 0 or self.density_grace_s < 0:
            raise ValueError("cadences and windows must be positive, grace non-negative")
        if not 0 <= self.min_instances <= self.max_instances:
            raise ValueError("need 0 <= min_instances <= max_instances")

    def shared_kwargs(self) -> dict[str, Any]:
        """Keyword arguments the policy constructors accept (``fleet.harness.SharedSettings``)."""
        kw: dict[str, Any] = {"min_instances": self.min_instances, "max_instances": self.max_instances,
                              "freeze_s": self.freeze_s, "engine": self.engine, "tpot_slo_s": self.slo_tpot_s,
                              "ttft_slo_s": self.slo_ttft_s, "seed": self.seed}
        if self.cold_start_s is not None:
            kw["cold_start_s"] = self.cold_start_s
        return kw

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PipelineConfig:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        retired = sorted(set(raw) & RETIRED)
        if retired:
            raise ValueError(f"pipeline settings {retired} are retired: agents now take a batch as soon as nothing "
                             "more is queued (streams/ready_batches.py); remove them")
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown pipeline settings: {sorted(unknown)}")
        return cls(**raw)


@lru_cache(maxsize=1)
def pipeline_config() -> PipelineConfig:
    """The config of this worker process (``PRESERVE_PIPELINE_CONFIG``, or the defaults)."""
    text = os.environ.get(ENV_VAR)
    return PipelineConfig.from_json(text) if text else PipelineConfig()
