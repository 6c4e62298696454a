"""PreServe's proactive scaler: a long-term loop on forecast token density, a short-term loop on anticipated load.

Long term: the forecast stage's forecasts of the service's prompt- and generated-token density (the density
stage's windows -> the forecast stage -> :meth:`observe_forecast`; or the trace itself for the oracle
ablation). The forecast over ``[now, now + cold start + one window]`` is turned into instances with the
profiled per-instance capacity of the engine (:mod:`instance_capacity`) and a target utilisation (head room):
capacity is started one cold start before the load arrives and is not released ahead of a rise.

Short term, each a lower bound on the instances needed:
* recent demand (last ``recent_s``, :class:`RecentLoad`: prompt tokens and *predicted* generated tokens by
  arrival, calibrated on the completions) plus the queued work, to be drained within one cold start;
* a fleet-wide :class:`LoadAnticipator` on the arrivals' predicted lengths: the anticipated KV peak over the
  cold start above ``high_water`` of the KV capacity;
* prefill bursts (:class:`PrefillBursts`): the prompt tokens that arrive within one TTFT SLO, which the
  fleet must prefill in time;
* SLO feedback: one more instance when recent completions miss the SLO more often than ``slo_miss_up``,
  beyond chance (a one-sided binomial test).
A queue beyond ``emergency_waiting`` per ready instance with nothing starting is an emergency: it passes the
freeze. Scale-down is one instance per action, only when the load would still sit under ``down_util`` without
it and no loop asked for the current size within ``down_stabilization_s``; never before two density windows
have been seen (the forecaster's EWMA needs two).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import (
    CompletionInfo,
    FleetView,
    ForecastInfo,
    InstanceState,
    RequestInfo,
    ScaleDecision,
)
from streams.policies.load_anticipator import AnticipatorConfig, LoadAnticipator
from streams.policies.policy_registry import register_scaler
from streams.policies.scalers.density_forecast import DensityForecast, OracleDensity, PublishedForecast
from streams.policies.scalers.instance_capacity import InstanceCapacity, capacity_at
from streams.policies.scalers.prefill_bursts import PrefillBursts
from streams.policies.scalers.recent_load import RecentLoad, binomial_tail

__all__ = ["PreServeScaler"]


@register_scaler("preserve")
class PreServeScaler(BaseScaler):
    """Proactive scaler. Parameters (all settable from a policy spec, e.g. ``preserve(forecast=oracle)``):

    :param engine: engine preset whose cost model and KV capacity give the per-instance capacity.
    :param forecast: ``online`` (the forecast stage's forecasts, through :meth:`observe_forecast`) or ``oracle``
        (the trace's future).
    :param window_s: window of the oracle's density and of the scale-down warm-up (two windows).
    :param target_util: utilisation an instance is sized for (1 - head room).
    :param down_util: scale down only if the load would stay under this utilisation with one instance fewer:
        the hysteresis below ``target_util``, about two standard errors of a ``recent_s`` rate estimate at
        ~20 requests/s (~3% each), so that noise alone does not flap the fleet.
    :param high_water: anticipated KV use / provisioned KV capacity that triggers a scale-up.
    :param emergency_waiting: queued requests per ready instance that count as an emergency.
    :param tpot_slo_s: TPOT SLO; the operating batch keeps decode steps under ``tpot_share`` of it.
    :param recent_s: span of the short-term demand estimate (arrival rates): one density window, so that a
        rise shows within a minute (180 s lagged the diurnal peak's rise and cost 4% of the SLO).
    :param mix_s: span of the request mix, of the predictor's calibration and of the SLO-miss count (these
        drift slowly; a short span only adds noise).
    :param cold_start_s: look-ahead; default: the fleet view's cold start, else the preset's.
    :param ttft_slo_s: TTFT SLO; with ``tpot_slo_s`` it defines an SLO miss among recent completions.
    :param slo_miss_up: share of recent completions missing the SLO that adds an instance (bursts that the
        mean density hides: the capacity model sizes for throughput, this loop for the latency tail).
    :param slo_miss_down: scale down only while the recent miss share is at most this.
    :param slo_miss_alpha: significance of the one-sided binomial test that the recent misses exceed
        ``slo_miss_up`` (one miss in the first 20 completions after a scale-up is chance, not evidence).
    :param down_stabilization_s: scale down only if no loop asked for the current size within this span
        (Kubernetes HPA's scale-down stabilisation window), so capacity that a burst needed is not handed
        back before the next burst.
    :param burst_quantile: quantile, over recent arrivals, of the prompt tokens that arrived within one TTFT
        SLO before each arrival (the prefill work queued ahead of it in a burst); the fleet must prefill that
        within ``burst_share`` of the TTFT SLO. Bursty traffic (the Azure code trace) needs instances for
        this, not for its mean density.
    :param burst_memory_s: span of arrivals the burst quantile is taken over.
    """

    TRACE_TIME_PARAMS = ("freeze_s", "interval_s", "window_s", "recent_s", "mix_s", "down_stabilization_s",
                         "burst_memory_s", "cold_start_s")

    def __init__(self, min_instances: int = 1, max_instances: int = 8, freeze_s: float = 60.0,
                 interval_s: float = 5.0, engine: str = "llama2-7b-h100", forecast: str = "online",
                 window_s: float = 60.0, target_util: float = 0.95, down_util: float = 0.9,
                 high_water: float = 0.95, emergency_waiting: float = 4.0, tpot_slo_s: float = 0.1,
                 tpot_share: float = 0.5, recent_s: float = 60.0, cold_start_s: float | None = None,
                 ttft_slo_s: float = 1.0, slo_miss_up: float = 0.01,
                 slo_miss_down: float = 0.002, down_stabilization_s: float = 120.0, burst_quantile: float = 0.99,
                 burst_share: float = 0.7, burst_memory_s: float = 600.0, slo_miss_alpha: float = 0.01,
                 mix_s: float = 180.0, **unknown: Any) -> None:
        if unknown:
            raise TypeError(f"unknown parameters for scaler 'preserve': {sorted(unknown)}")
        super().__init__(min_instances, max_instances, freeze_s, interval_s)
        if not 0 < down_util < target_util <= 1 or not 0 < high_water <= 1 or recent_s <= 0 or mix_s <= 0:
            raise ValueError("need 0 < down_util < target_util <= 1, 0 < high_water <= 1, recent_s, mix_s > 0")
        if forecast not in ("online", "oracle"):
            raise ValueError(f"forecast must be 'online' or 'oracle', got {forecast!r}")
        from streams.policies.engine_profiles import get_preset  # the preset lives with the simulator

        self.engine = get_preset(engine)
        self.forecast_kind = forecast
        self.window_s = window_s
        self.target_util = target_util
        self.down_util = down_util
        self.high_water = high_water
        self.ttft_slo_s, self.tpot_slo_s = ttft_slo_s, tpot_slo_s
        self.slo_miss_up, self.slo_miss_down, self.slo_miss_alpha = slo_miss_up, slo_miss_down, slo_miss_alpha
        self._slo_from = -math.inf  # completions of requests that arrived before this are ignored
        self.down_stabilization_s = down_stabilization_s
        self.burst_share = burst_share
        self.bursts = PrefillBursts(ttft_slo_s, burst_memory_s, burst_quantile, refresh_s=window_s / 4)
        self._needs: deque[tuple[float, int]] = deque()  # (t, instances needed) over the stabilisation span
        self.emergency_waiting = emergency_waiting
        self.tpot_target_s = tpot_slo_s * tpot_share
        self.cold_start_s = cold_start_s
        self.published = PublishedForecast(window_s)
        self.density: DensityForecast = self.published if forecast == "online" else OracleDensity(window_s)
        self.fleet_load = LoadAnticipator(AnticipatorConfig(horizon_s=120.0, bucket_s=2.0))
        self.recent = RecentLoad(recent_s, mix_s)
        self.last_details: dict[str, float] = {}
        self._first_seen: float | None = None

    # ------------------------------------------------------------------ hooks
    @property
    def forecast_targets(self) -> tuple[str, ...]:
        return ("prompt_tokens", "output_tokens") if self.forecast_kind == "online" else ()

    @property
    def needs_future(self) -> bool:
        return self.forecast_kind == "oracle"

    def observe_forecast(self, forecast: ForecastInfo, now: float) -> None:
        self.published.observe(forecast)

    def attach_oracle(self, arrivals: Sequence[tuple[float, int, int]]) -> None:
        if isinstance(self.density, OracleDensity):
            self.density.attach(arrivals)

    def observe_arrival(self, request: RequestInfo, now: float) -> None:
        if self._first_seen is None:
            self._first_seen = now
        # a sum over many requests: the expected length is the right estimate here (the router, placing one
        # request, uses the conservative quantile)
        predicted = request.predicted_tokens or request.predicted_p90_tokens
        self.fleet_load.add(request.request_id, request.prompt_tokens, predicted, now)
        self.bursts.observe(now, request.prompt_tokens)
        self.recent.arrival(now, request.request_id, request.prompt_tokens, predicted)

    def observe_completion(self, completion: CompletionInfo, now: float) -> None:
        self.fleet_load.complete(completion.request_id, completion.output_tokens,
                                 completion.finish - completion.arrival, completion.ttft_s, now)
        missed = None
        if completion.arrival >= self._slo_from:
            decode = completion.finish - completion.arrival - completion.ttft_s
            tpot = decode / (completion.output_tokens - 1) if completion.output_tokens > 1 else 0.0
            missed = int(completion.ttft_s > self.ttft_slo_s or tpot > self.tpot_slo_s)
        self.recent.completion(now, completion.request_id, completion.prompt_tokens, completion.output_tokens,
                               missed)

    # ---------------------------------------------------------------- policy
    def capacity(self) -> InstanceCapacity:
        e = self.engine
        return capacity_at(e.cost_model, e.kv_capacity_tokens, e.max_num_seqs, *self.recent.mix(),
                           self.tpot_target_s)

    def _cold_start(self, fleet: FleetView) -> float:
        if self.cold_start_s is not None:
            return self.cold_start_s
        return fleet.cold_start_s or self.engine.cold_start_s

    def _queue(self, fleet: FleetView) -> tuple[int, int, int]:
        ready = fleet.ready()
        return sum(i.waiting for i in ready), sum(i.waiting_prompt_tokens for i in ready), len(ready)

    def _urgent(self, fleet: FleetView, now: float) -> bool:
        """A queue beyond ``emergency_waiting`` per ready instance, no capacity already on its way, and a
        need above the provisioned fleet: then a scale-up may pass the freeze."""
        waiting, _, ready = self._queue(fleet)
        if waiting <= self.emergency_waiting * max(1, ready) or fleet.count(InstanceState.STARTING):
            return False
        return self._need(fleet, now)[0] > fleet.provisioned

    def _need(self, fleet: FleetView, now: float) -> tuple[int, str, dict[str, float]]:
        """Instances needed now, the loop that asked for the most, and the numbers behind it."""
        self.recent.age(now)  # first: capacity() reads the request mix of the window
        rp, rg = self.recent.rates(now, self.interval_s)
        cap = self.capacity()
        cold = self._cold_start(fleet)
        # long term: forecast density over the look-ahead (capacity started now is ready after a cold start)
        fp, fg = self.density.peak_rates(now, cold + self.window_s)
        u_long = cap.utilisation(fp, fg)
        # short term: recent demand, plus the queued work, to be drained within one cold start
        waiting, waiting_prompt, _ = self._queue(fleet)
        backlog_s = waiting_prompt * cap.s_per_prompt_token + waiting * self.recent.mix()[1] * cap.s_per_gen_token
        u_short = cap.utilisation(rp, rg) + backlog_s / max(cold, self.interval_s)
        # short term: anticipated KV peak over the cold start against the provisioned KV capacity
        kv_cap = self.engine.kv_capacity_tokens
        measured = sum(i.kv_used_tokens for i in fleet.instances if i.state is not InstanceState.DRAINING)
        # Once a queue has formed, the fleet anticipator (which cannot tell queued from running requests)
        # overstates the KV peak: the backlog term above sizes the fleet then, the measured KV use here.
        kv_peak = measured if waiting else max(self.fleet_load.max_load(now, cold), measured)
        # feedback: the latency tail that a throughput model cannot see (bursts), measured on completions
        miss = self.recent.miss_share()
        # more misses than the SLO allows, beyond chance: one miss among the first completions is no evidence
        missing = binomial_tail(self.recent.slo_misses, self.recent.judged(), self.slo_miss_up) < self.slo_miss_alpha
        burst = self.bursts.tokens(now)
        burst_s = burst * cap.s_per_prompt_token / (self.burst_share * self.ttft_slo_s)
        needs = {"forecast": math.ceil(u_long / self.target_util - 1e-9),
                 "recent load": math.ceil(u_short / self.target_util - 1e-9),
                 "anticipated KV peak": math.ceil(kv_peak / (self.high_water * kv_cap)),
                 "prefill bursts": math.ceil(burst_s - 1e-9),
                 "SLO misses": fleet.provisioned + 1 if missing else 0}
        why = max(needs, key=lambda k: needs[k])
        details = {"u_forecast": u_long, "u_recent": u_short, "kv_peak": kv_peak, "waiting": float(waiting),
                   "slo_miss": miss, "burst_tokens": burst, "cold_start_s": cold, "batch": float(cap.batch),
                   **{f"need / {k}": float(v) for k, v in needs.items()}}
        self.last_details = details
        return max(needs[why], self.min_instances), why, details

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        need, why, d = self._need(fleet, now)
        current = fleet.provisioned
        self._needs.append((now, need))
        while self._needs[0][0] < now - self.down_stabilization_s:
            self._needs.popleft()
        u = max(d["u_forecast"], d["u_recent"])
        if need > current:
            urgent = d["waiting"] > self.emergency_waiting * max(1, len(fleet.ready()))
            label = "emergency scale up" if urgent else "scale up"
            # judge the SLO again only on requests that arrive once the new capacity is ready
            self.recent.reset_slo()
            self._slo_from = now + d["cold_start_s"]
            return ScaleDecision(need, f"{label} on {why}: util {u:.2f}, kv peak {d['kv_peak']:.0f}", d)
        if self._first_seen is None:
            self._first_seen = now
        if now - self._first_seen < 2 * self.window_s:
            return None  # too little seen to release capacity
        kv_room = self.high_water * self.engine.kv_capacity_tokens * (current - 1)
        # u < down_util x (current - 1), not u / (current - 1): with min_instances=0 a fleet of one would divide
        # by zero; no load fits in zero instances, so the last one stays (as the KV room of zero says too)
        if current > self.min_instances and d["waiting"] == 0 and u < self.down_util * (current - 1) \
                and d["kv_peak"] < kv_room and d["slo_miss"] <= self.slo_miss_down \
                and max(n for _, n in self._needs) < current:
            return ScaleDecision(current - 1, f"scale down: util {u:.2f} < {self.down_util} x {current - 1}", d)
        return None

