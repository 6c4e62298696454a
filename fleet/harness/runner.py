"""``run_eval``: every policy of a comparison on the same trace, fleet bounds, SLOs and cold start.

Output-length predictions are computed once per predictor spec per evaluation (the ``predict`` stage runs for
every request in the live pipeline too), and the CPU time of that call, divided over the requests, counts in
each policy's ``overhead_fraction`` together with the measured routing and scaling CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fleet.harness.summary import row_kind, summarize_runs
from fleet.metrics import service_metrics, summarize
from fleet.pool import InstancePool
from fleet.pool_simulator import merge_results, simulate_pool
from fleet.sim_inputs import Overlength, SimConfig, SimResult, Workload
from fleet.simulator import Simulator, simulate
from streams.policies.builder import build_policy, predictor_for
from streams.policies.control_settings import ControlSettings
from streams.policies.engine_profiles import EngineConfig
from streams.policies.policy_registry import PolicySpec, parse_policy

__all__ = ["EvalConfig", "EvalRun", "EvalReport", "run_eval", "PredictionCache"]


@dataclass(frozen=True)
class EvalConfig(ControlSettings):
    """Settings of one comparison (``preserve eval`` flags): the control core's :class:`ControlSettings` plus
    what only a simulation has."""

    overlength: Overlength = field(default="truncate", metadata={"help": "see SimConfig.overlength"})
    engine_mismatch: float = field(default=1.0, metadata={
        "help": "every simulated engine step takes this many times the profile's time, while every policy keeps "
                "reading the profile (1.15: the engine is 15% slower than believed)"})
    sample_interval_s: float = field(default=10.0, metadata={"help": "time-series sampling period"})
    horizon_s: float = field(default=3600.0, metadata={"help": "give up this long after the last arrival"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.engine_mismatch > 0:
            raise ValueError(f"engine_mismatch must be > 0, got {self.engine_mismatch}")


@dataclass
class EvalRun:
    spec: PolicySpec
    predictor: str
    result: SimResult | None  # None when run_eval(keep_results=False): per-request arrays not kept
    row: dict[str, Any]


@dataclass
class EvalReport:
    """The JSON document (``doc``) and the raw runs (for plots)."""

    doc: dict[str, Any]
    runs: list[EvalRun]


class PredictionCache:
    """Predictions per predictor spec for one trace, with the CPU seconds they cost.

    :param store: a Parquet file of predictions keyed by (spec, prompt, prompt length, serving model), read
        before predicting and written back by :meth:`save`: a day re-evaluated (other policies, other settings,
        another machine without the encoder's weights) is not encoded again. The CPU cost charged to the
        policies stays what the live predict stage would spend: the stored per-row cost times every request.
    """

    def __init__(self, df: pd.DataFrame, seed: int, store: Path | None = None) -> None:
        self.df = df
        self.seed = seed
        self.store = store
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, str, float]] = {}
        self.quantiles: dict[str, dict[str, np.ndarray]] = {}  # spec -> the predictor's quantiles, if any
        self._stored = pd.read_parquet(store) if store is not None and store.exists() else None
        self._new: list[pd.DataFrame] = []

    def get(self, spec: str) -> tuple[np.ndarray, np.ndarray, str, float]:
        """``(mean, p90, source, cpu_s)`` for every request of the trace, in order.

        The serving model is the trace's ``model`` column where it has one (an LMaaS day), else the service name.
        Rows with the same prompt, prompt length and serving model are predicted once (a day samples a corpus of
        thousands of prompts millions of times); the oracles see every row's own length.
        """
        if spec in self._cache:
            return self._cache[spec]
        df = self.df
        models = (df["model"] if "model" in df else df["service"]).astype(str)
        prompts = df["prompt"] if "prompt" in df else pd.Series([None] * len(df), index=df.index)
        if spec.split("(")[0] in ("oracle", "noisy-oracle") or "prompt" not in df:
            keys, inverse = None, np.arange(len(df))
        else:
            keys = pd.DataFrame({"prompt": prompts.fillna("").astype(str).to_numpy(),
                                 "prompt_tokens": df["prompt_tokens"].to_numpy(np.int64),
                                 "model": models.to_numpy()})
            inverse = pd.factorize(pd.MultiIndex.from_frame(keys))[0]
            keys = keys.iloc[np.unique(inverse, return_index=True)[1]].reset_index(drop=True)
        table = self._lookup(spec, keys) if keys is not None else None
        if table is None:
            from models.request_load.predictor_registry import get_predictor

            cpu = time.process_time()
            predictor = get_predictor(spec, true_lengths=df["output_tokens"].to_numpy(np.float64), seed=self.seed)
            rows = keys if keys is not None else pd.DataFrame({"prompt": prompts.tolist(),
                                                               "prompt_tokens": df["prompt_tokens"].to_numpy(),
                                                               "model": models.to_numpy()})
            pred = predictor.predict(rows["prompt"].tolist(), rows["prompt_tokens"].tolist(), rows["model"].tolist())
            cpu = time.process_time() - cpu
            table = rows.assign(mean=np.asarray(pred.mean, np.float64), p90=np.asarray(pred.p90, np.float64),
                                source=pred.source, cpu_per_row_s=cpu / max(len(rows), 1),
                                **{f"q_{k}": np.asarray(v, np.float64) for k, v in pred.quantiles.items()})
            if keys is not None:
                self._new.append(table.assign(spec=spec))
        q = {c[2:]: table[c].to_numpy(np.float64)[inverse] for c in table.columns if c.startswith("q_")}
        self.quantiles[spec] = q
        cpu_total = float(table["cpu_per_row_s"].iloc[0]) * len(df) if len(table) else 0.0
        self._cache[spec] = (table["mean"].to_numpy(np.float64)[inverse], table["p90"].to_numpy(np.float64)[inverse],
                             str(table["source"].iloc[0]) if len(table) else "", cpu_total)
        return self._cache[spec]

    def _lookup(self, spec: str, keys: pd.DataFrame) -> pd.DataFrame | None:
        """The stored predictions of ``spec`` for exactly these keys, in their order; None if any is missing."""
        if self._stored is None:
            return None
        mine = self._stored[self._stored["spec"] == spec].drop(columns="spec")
        got = keys.merge(mine, on=["prompt", "prompt_tokens", "model"], how="left", validate="one_to_one")
        if got["mean"].isna().any():
            return None
        return got.dropna(axis=1, how="all")

    def save(self) -> None:
        """Write the predictions computed in this run into the store (keeping what it held)."""
        if self.store is None or not self._new:
            return
        frames = ([self._stored] if self._stored is not None else []) + self._new
        merged = pd.concat(frames, ignore_index=True).drop_duplicates(["spec", "prompt", "prompt_tokens", "model"],
                                                                      keep="last")
        self.store.parent.mkdir(parents=True, exist_ok=True)
        merged.to_parquet(self.store, index=False)


def _specs(policies: Sequence[PolicySpec | str]) -> list[PolicySpec]:
    return [parse_policy(p) if isinstance(p, str) else p for p in policies]


def run_eval(trace: pd.DataFrame, policies: Sequence[PolicySpec | str], config: EvalConfig | None = None,
             trace_info: dict[str, Any] | None = None,
             progress: Callable[[str, int], None] | None = None, keep_results: bool = True,
             history: pd.DataFrame | None = None, prediction_store: Path | None = None) -> EvalReport:
    """Simulate every policy on ``trace`` (a normalised DataFrame, already rate-scaled / windowed).

    :param policies: specs like ``"least-kv:reactive(up=0.8,down=0.3)"`` or :class:`PolicySpec` objects.
    :param trace_info: what to record about the trace in the JSON (path, format, rate scale, stats).
    :param progress: called as ``progress(label, finished_requests)`` during each run.
    :param keep_results: keep each run's :class:`SimResult` (per-request arrays, time series) in the report,
        for plots; False saves memory on long traces with many policies.
    :param history: the previous day (same normalisation), for policies fitted on it (``attach_history``).
    :param prediction_store: a Parquet file of length predictions to reuse and extend (:class:`PredictionCache`).
    """
    cfg = config or EvalConfig()
    specs = _specs(policies)
    engine = cfg.engine_config()
    if cfg.engine_mismatch != 1.0:  # the simulated engine only: policies are built from the profile's name
        engine = replace(engine, cost_model=engine.cost_model.scaled(cfg.engine_mismatch))
    preds = PredictionCache(trace, cfg.seed, prediction_store)
    # Build every policy first, so that a bad spec fails before any simulation time is spent.
    built = [build_policy(s, cfg) for s in specs]
    past = None if history is None else _arrivals_of(history)
    for spec, (_, scaler) in zip(specs, built, strict=True):
        if scaler.needs_history and past is None:
            raise ValueError(f"{spec.label} is fitted on the previous day: give it with --history FILE")
    services = sorted(trace["service"].astype(str).unique()) if len(trace) else []
    arrivals = _arrivals_of(trace) if len(services) <= 1 else []  # several services: each fleet gets its own
    runs: list[EvalRun] = []
    for spec, (router, scaler) in zip(specs, built, strict=True):
        pspec = predictor_for(spec, cfg.predictor)
        mean, p90, source, pred_cpu = preds.get(pspec)
        label = spec.label
        cb = (lambda done, _l=label: progress(_l, done)) if progress else None
        if len(services) > 1:
            result, extra = _run_pooled(trace, history, spec, cfg, engine, (mean, p90, source),
                                        preds.quantiles.get(pspec), services, cb)
        else:
            workload = Workload.from_trace(trace, mean, p90, preds.quantiles.get(pspec), source)
            scaler.attach_oracle(arrivals)
            if past is not None:
                scaler.attach_history(past)
            sim_cfg = _sim_config(cfg, engine, scaler.initial_instances(cfg.instances), cfg.min_instances,
                                  cfg.max_instances)
            result, extra = simulate(workload, sim_cfg, router, scaler, cb), {}
        row = {"policy": f"{spec.router}:{spec.scaler}", "label": label, "kind": "",
               "params": {"router": dict(spec.router_params), "scaler": dict(spec.scaler_params)},
               "predictor": pspec, "predictor_source": source, "prediction_cpu_s": pred_cpu,
               **summarize(result, cfg.slo_ttft_s, cfg.slo_tpot_s, extra_cpu_s=pred_cpu), **extra}
        row["kind"] = row_kind(row)
        runs.append(EvalRun(spec, pspec, result if keep_results else None, row))
    preds.save()
    doc = {"trace": trace_info if trace_info is not None else _describe(trace),
           "settings": {**asdict(cfg), "engine_config": _engine_summary(engine)},
           "results": [r.row for r in runs], "summary": summarize_runs([r.row for r in runs])}
    return EvalReport(doc, runs)


def _sim_config(cfg: EvalConfig, engine: EngineConfig, initial: int, lo: int, hi: int) -> SimConfig:
    return SimConfig(engine=engine, initial_instances=initial, min_instances=lo, max_instances=hi,
                     sample_interval_s=cfg.sample_interval_s, overlength=cfg.overlength, horizon_s=cfg.horizon_s,
                     warmup_s=cfg.trace_s(cfg.warmup_s), predictor_online_window=cfg.predictor_online_window,
                     density_window_s=cfg.trace_s(cfg.density_window_s),
                     density_grace_s=cfg.trace_s(cfg.density_grace_s), forecast_horizon=cfg.forecast_horizon,
                     forecast_model=cfg.forecast_model)


def _arrivals_of(df: pd.DataFrame) -> list[tuple[float, int, int]]:
    return list(zip(df["arrival_s"].tolist(), df["prompt_tokens"].tolist(), df["output_tokens"].tolist(),
                    strict=True))


def _run_pooled(trace: pd.DataFrame, history: pd.DataFrame | None, spec: PolicySpec, cfg: EvalConfig,
                engine: EngineConfig, predicted: tuple[np.ndarray, np.ndarray, str],
                quantiles: dict[str, np.ndarray] | None, services: list[str],
                progress: Callable[[int], None] | None) -> tuple[SimResult, dict[str, Any]]:
    """One policy on a multi-service trace: a fleet per service (own router and scaler, built from the same
    spec), every fleet on one GPU pool of ``max_instances``; each service keeps at least one instance.
    ``predicted``: the whole trace's (mean, p90, source) of this policy's predictor."""
    mean, p90, source = predicted
    pool = InstancePool(cfg.max_instances)
    lo, hi = max(1, cfg.min_instances), cfg.max_instances - (len(services) - 1)
    if hi < lo:
        raise ValueError(f"a pool of {cfg.max_instances} instances cannot keep one instance for each of "
                         f"{len(services)} services")
    svc_cfg = replace(cfg, min_instances=lo, max_instances=hi)
    column = trace["service"].astype(str).to_numpy()
    done = [0] * len(services)
    parts = []
    for service in services:
        rows = np.flatnonzero(column == service)
        router, scaler = build_policy(spec, svc_cfg)
        parts.append((rows, router, scaler))
    warm = _warm_in_pool([scaler.initial_instances(cfg.instances) for _, _, scaler in parts], cfg.max_instances)
    sims: list[Simulator] = []
    for k, (service, (rows, router, scaler)) in enumerate(zip(services, parts, strict=True)):
        part = trace.iloc[rows]
        scaler.attach_oracle(_arrivals_of(part))
        if history is not None:
            scaler.attach_history(_arrivals_of(history[history["service"].astype(str) == service]))
        workload = Workload.from_trace(part, mean[rows], p90[rows],
                                       {q: v[rows] for q, v in quantiles.items()} if quantiles else None, source)

        def tick(n: int, _k: int = k) -> None:
            done[_k] = n
            if progress is not None:
                progress(sum(done))

        sims.append(Simulator(workload, _sim_config(svc_cfg, engine, warm[k], lo, hi), router, scaler, tick, pool))
    run = simulate_pool(sims, pool)
    per_service = {svc: service_metrics(res, cfg.slo_ttft_s, cfg.slo_tpot_s)
                   for svc, res in zip(services, run.results, strict=True)}
    return merge_results(run.results, services), {
        "per_service": per_service, "pool_instances": cfg.max_instances, "pool_waits": run.pool_waits,
        "pool_wait_instance_hours": run.pool_wait_instance_s / 3600.0}


def _warm_in_pool(wanted: list[int], capacity: int) -> list[int]:
    """Warm instances per service at t=0 within the pool: one each first, then one more per service in turn
    while GPUs are left; what did not fit, each scaler asks for at its first decision (and may wait)."""
    warm = [min(1, w) for w in wanted]
    left = capacity - sum(warm)
    while left > 0 and any(g < w for g, w in zip(warm, wanted, strict=True)):
        for k, w in enumerate(wanted):
            if left > 0 and warm[k] < w:
                warm[k] += 1
                left -= 1
    return warm


def _describe(trace: pd.DataFrame) -> dict[str, Any]:
    """Trace statistics for the JSON when the caller gave none (a DataFrame built in a script)."""
    from replay.trace_transform import trace_stats

    stats = trace_stats(trace)
    return {"requests": stats.rows, "span_s": stats.span_s, "mean_rate_req_s": stats.mean_rate,
            "peak_rate_req_s": stats.peak_rate, "peak_to_mean": stats.peak_to_mean, "services": stats.services}


def _engine_summary(engine: EngineConfig) -> dict[str, Any]:
    keys = ("name", "gpu", "model", "kv_capacity_tokens", "block_size", "max_num_seqs", "max_batched_tokens",
            "chunked_prefill", "max_model_len", "cold_start_s")
    return {k: getattr(engine, k) for k in keys}
