"""What one simulation run takes (the workload as arrays, the fleet settings) and what it gives back.

The workload is columnar (numpy arrays in arrival order) because a run touches every request once and a
DataFrame row access would cost more than simulating the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from fleet.itl import ItlHistogram
from streams.policies.engine_profiles import EngineConfig

__all__ = ["Workload", "SimConfig", "SimResult", "Overlength"]

Overlength = Literal["truncate", "drop"]


@dataclass(frozen=True)
class Workload:
    """Requests in arrival order. ``predicted``/``predicted_p90`` are the request-load predictor's output."""

    arrival: np.ndarray  # (N,) float64 seconds, non-decreasing
    prompt_tokens: np.ndarray  # (N,) int64
    output_tokens: np.ndarray  # (N,) int64, the true output length (the simulated engine stops there)
    request_ids: list[str]
    service: str = "default"
    predicted: np.ndarray | None = None  # (N,) float64 expected output tokens
    predicted_p90: np.ndarray | None = None  # (N,) float64 conservative quantile
    quantiles: dict[str, np.ndarray] | None = None  # "p10" -> (N,) ..., the predictor's calibrated quantiles
    predictor_source: str = ""  # "model", "fallback", "oracle", ... (oracles are not corrected online)

    def __post_init__(self) -> None:
        n = len(self.arrival)
        if not (len(self.prompt_tokens) == len(self.output_tokens) == len(self.request_ids) == n):
            raise ValueError("workload columns have different lengths")
        if n and np.any(np.diff(self.arrival) < 0):
            raise ValueError("workload arrivals must be sorted ascending")
        for name in ("predicted", "predicted_p90"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries for {n} requests")

    def __len__(self) -> int:
        return len(self.arrival)

    @classmethod
    def from_trace(cls, df: pd.DataFrame, predicted: np.ndarray | None = None,
                   predicted_p90: np.ndarray | None = None, quantiles: dict[str, np.ndarray] | None = None,
                   predictor_source: str = "") -> Workload:
        """From a normalised trace DataFrame (docs/INTERFACES.md). One service per run: the first one seen."""
        service = str(df["service"].iloc[0]) if len(df) and "service" in df else "default"
        return cls(arrival=df["arrival_s"].to_numpy(np.float64),
                   prompt_tokens=df["prompt_tokens"].to_numpy(np.int64),
                   output_tokens=df["output_tokens"].to_numpy(np.int64),
                   request_ids=[str(x) for x in df["request_id"]], service=service,
                   predicted=predicted, predicted_p90=predicted_p90, quantiles=quantiles,
                   predictor_source=predictor_source)


@dataclass(frozen=True)
class SimConfig:
    """Fleet settings shared by every policy of one comparison."""

    engine: EngineConfig = field(metadata={"help": "engine of every instance (capacity, limits, cost model)"})
    initial_instances: int = field(default=1, metadata={"help": "instances READY at t=0 (warm)"})
    min_instances: int = field(default=1, metadata={"help": "fleet bound shown to policies"})
    max_instances: int = field(default=8, metadata={"help": "fleet bound shown to policies"})
    sample_interval_s: float = field(default=10.0, metadata={"help": "period of the per-instance time series"})
    overlength: Overlength = field(default="truncate", metadata={
        "help": "prompt + output > max_model_len: 'truncate' keeps the last max_model_len-1 prompt tokens and "
                "cuts the output at max_model_len (vLLM finish_reason=length); 'drop' rejects the request"})
    warmup_s: float = field(default=0.0, metadata={
        "help": "the scaler is first polled at max(its interval, warmup_s): the warm fleet starts with empty "
                "caches, which a utilisation scaler would otherwise read as idle"})
    horizon_s: float = field(default=3600.0, metadata={
        "help": "after the last arrival, give up after this long; requests still unfinished are dropped"})
    check_invariants: bool = field(default=False, metadata={"help": "recount KV after every step (tests)"})
    predictor_online_window: int = field(default=0, metadata={
        "help": "the predict stage's online correction from completions, as live (0 = off)"})
    density_window_s: float = field(default=60.0, metadata={"help": "density stage window, for forecast-reading scalers"})
    density_grace_s: float = field(default=30.0, metadata={"help": "density stage grace for late completions"})
    forecast_horizon: int = field(default=3, metadata={"help": "windows the forecast stage forecasts ahead"})
    forecast_model: str = field(default="mlstm", metadata={"help": "forecast stage model (mlstm, lstm, ewma, ...)"})

    def __post_init__(self) -> None:
        if not 0 <= self.min_instances <= self.max_instances:
            raise ValueError("need 0 <= min_instances <= max_instances")
        if self.initial_instances < 0 or self.sample_interval_s <= 0 or self.horizon_s <= 0 or self.warmup_s < 0:
            raise ValueError("need initial_instances >= 0, sample_interval_s > 0, horizon_s > 0, warmup_s >= 0")
        if self.overlength not in ("truncate", "drop"):
            raise ValueError(f"overlength must be 'truncate' or 'drop', got {self.overlength!r}")


@dataclass
class SimResult:
    """Per-request outcomes (arrays in workload order), per-instance lifetimes and sampled time series."""

    arrival: np.ndarray
    prompt_tokens: np.ndarray  # as served (after truncation)
    output_tokens: np.ndarray  # as served (after truncation)
    first_token: np.ndarray  # NaN if dropped
    finish: np.ndarray  # NaN if dropped
    preemptions: np.ndarray
    instance: np.ndarray  # index into ``instances``; -1 if never placed
    drop_reason: list[str | None]
    truncated: int
    instances: list[dict[str, object]]  # id, start_requested_at, ready_at, stopped_at
    scale_actions: list[dict[str, object]]  # t, from, to, reason
    fleet_samples: np.ndarray  # (T, 6): t, ready, starting, draining, gateway_queue, in_system
    instance_samples: np.ndarray  # (S, 6): t, instance, state(0..3), running, waiting, kv_utilization
    end_time: float
    control_cpu_s: float  # routing + scaling hooks, measured
    wall_s: float = 0.0
    itl: ItlHistogram = field(default_factory=ItlHistogram)  # inter-token gaps over tokens, all instances

    @property
    def completed(self) -> np.ndarray:
        return ~np.isnan(self.finish)
