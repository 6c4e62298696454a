"""The one settings type of the control core, shared by both drivers.

The live pipeline (:class:`streams.pipeline_config.PipelineConfig`) and the offline evaluation
(:class:`fleet.harness.runner.EvalConfig`) both extend :class:`ControlSettings`, so a fleet bound, an SLO or a
density window has one name, one default and one meaning everywhere (CLI flags take the field names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.policies.engine_profiles import EngineConfig, get_preset

__all__ = ["ControlSettings"]


@dataclass(frozen=True)
class ControlSettings:
    """Fleet, SLO, engine and density/forecast settings that every policy of a run shares."""

    instances: int = field(default=4, metadata={"help": "warm instances a service starts with (unless the scaler "
                                                        "sets initial_instances)"})
    min_instances: int = field(default=1, metadata={"help": "fewest provisioned instances"})
    max_instances: int = field(default=8, metadata={"help": "most provisioned instances"})
    freeze_s: float = field(default=60.0, metadata={"help": "no scaling action for this long after one"})
    engine: str = field(default="llama2-7b-h100", metadata={"help": "engine profile (preset) of every instance"})
    cold_start_s: float | None = field(default=None, metadata={"help": "override the profile's cold start"})
    slo_ttft_s: float = field(default=1.0, metadata={"help": "TTFT SLO in seconds"})
    slo_tpot_s: float = field(default=0.1, metadata={"help": "TPOT SLO in seconds"})
    seed: int = field(default=0, metadata={"help": "seed of randomised routers and noisy predictors"})
    predictor: str = field(default="fallback", metadata={"help": "request-load predictor spec (a router's "
                                                                 "predictor=... overrides it)"})
    predictor_online_window: int = field(default=256, metadata={
        "help": "completions per service the predictor's online correction learns from (0 = off); the predict "
                "stage live, the simulator offline"})
    warmup_s: float = field(default=60.0, metadata={
        "help": "scalers are first polled this long after the first arrival (the warm fleet starts with empty "
                "KV caches, which a utilisation scaler would read as idle)"})
    density_window_s: float = field(default=60.0, metadata={"help": "token-density window (event seconds)"})
    density_grace_s: float = field(default=30.0, metadata={"help": "late completions still counted (event s)"})
    forecast_horizon: int = field(default=3, metadata={"help": "windows the forecast stage forecasts ahead"})
    forecast_model: str = field(default="mlstm", metadata={"help": "forecaster (mlstm, lstm, ewma, last_value, "
                                                                   "...)"})
    time_scale: float = field(default=1.0, metadata={
        "help": "the trace is played this many times faster than recorded: cold start, freeze, warm-up, the "
                "density windows and every policy's windows are divided by it (offline only; 1 = trace time)"})

    def __post_init__(self) -> None:
        if not 0 <= self.min_instances <= self.max_instances:
            raise ValueError(f"need 0 <= min_instances <= max_instances, got {self.min_instances}, "
                             f"{self.max_instances}")
        if self.instances < 0 or self.freeze_s < 0 or self.warmup_s < 0:
            raise ValueError("instances, freeze_s and warmup_s must be >= 0")
        if self.density_window_s <= 0 or self.density_grace_s < 0 or self.forecast_horizon < 1:
            raise ValueError("need density_window_s > 0, density_grace_s >= 0 and forecast_horizon >= 1")
        if self.slo_ttft_s <= 0 or self.slo_tpot_s <= 0:
            raise ValueError("SLOs must be > 0")
        if self.cold_start_s is not None and self.cold_start_s < 0:
            raise ValueError("cold_start_s must be >= 0")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")

    def trace_s(self, seconds: float) -> float:
        """A control time constant in the (compressed) trace's seconds."""
        return seconds / self.time_scale

    def engine_config(self) -> EngineConfig:
        """The engine profile with the cold-start override applied, in trace time (what every instance is)."""
        from dataclasses import replace

        eng = get_preset(self.engine)
        cold = eng.cold_start_s if self.cold_start_s is None else self.cold_start_s
        return replace(eng, cold_start_s=self.trace_s(cold))

    def policy_kwargs(self) -> dict[str, Any]:
        """What the builder offers every policy constructor (each takes the names it declares)."""
        kw: dict[str, Any] = {"min_instances": self.min_instances, "max_instances": self.max_instances,
                              "freeze_s": self.freeze_s, "engine": self.engine, "tpot_slo_s": self.slo_tpot_s,
                              "ttft_slo_s": self.slo_ttft_s, "seed": self.seed, "window_s": self.density_window_s}
        if self.cold_start_s is not None:
            kw["cold_start_s"] = self.cold_start_s
        return kw
