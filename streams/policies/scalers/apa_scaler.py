"""AIBrix's Pod Autoscaler (APA) on the engines' KV-cache utilisation (``kv_cache_usage_perc``).

Faithful to AIBrix (vllm-project/aibrix): ``docs/source/features/autoscaling/metric-based-autoscaling.rst``
("APA: similar as HPA but it has fluctuation parameter which acts as minimum buffer before triggering scaling up
and down to prevent oscillation"; its annotation table and ``samples/autoscaling/apa.yaml``) and the algorithm in
``pkg/controller/podautoscaler/algorithm/apa.go`` (``computeTargetReplicas``, after Huo et al., "High
Concurrency Response Strategy based on Kubernetes Horizontal Pod Autoscaler", 2023):

* the metric is the per-pod KV-cache use averaged over the APA metric window (the sample's
  ``apa.autoscaling.aibrix.ai/window: 30s``; ``observeWindowSeconds`` defaults to 180 s), target 0.5 in the
  sample;
* with ``ratio = use / target``: scale up only when ``ratio > 1 + up_tolerance`` (sample 0.1), to
  ``ceil(current x ratio)`` but at most ``ceil(max_scale_up_rate x current)`` (default rate 2); scale down only
  when ``ratio < 1 - down_tolerance`` (sample 0.2), to ``ceil(current x ratio)`` but not below
  ``floor(current / max_scale_down_rate)`` (default 2); inside the band, no change. Both band edges are strict;
* ``current`` is the ready pods (AIBrix's APA scaler reads the metric from, and scales from, the ready pods);
* scale-up cooldown 0 s, scale-down cooldown (stabilisation) 300 s, the documented defaults: a scale-down goes
  only to the highest recommendation of the last 300 s, and only below the provisioned count.

Where it is not AIBrix: the controller's sync period is not documented for APA; 15 s is taken (the HPA's). A
recommendation between the ready and the provisioned (ready + starting) count does nothing: the starting
instances already give it, as the Deployment's replicas would.
"""

from __future__ import annotations

import math
from collections import deque

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler

__all__ = ["APAScaler"]


@register_scaler("apa")
class APAScaler(BaseScaler):
    """:param target: target KV-cache use per pod (the metric source's ``targetValue``; sample 0.5).
    :param up_tolerance: scale up only above ``target x (1 + up_tolerance)`` (sample 0.1).
    :param down_tolerance: scale down only below ``target x (1 - down_tolerance)`` (sample 0.2).
    :param max_scale_up_rate: at most ``ceil(rate x current)`` after a scale-up (default 2).
    :param max_scale_down_rate: at least ``floor(current / rate)`` after a scale-down (default 2).
    :param window_s: the metric window the per-pod use is averaged over (sample 30 s).
    :param scale_down_cooldown_s: scale-down stabilisation window (default 300 s).
    :param sync_s: how often it evaluates (15 s; see the module docstring).
    """

    TRACE_TIME_PARAMS = ("window_s", "scale_down_cooldown_s", "sync_s")

    def __init__(self, target: float = 0.5, up_tolerance: float = 0.1, down_tolerance: float = 0.2,
                 max_scale_up_rate: float = 2.0, max_scale_down_rate: float = 2.0, window_s: float = 30.0,
                 scale_down_cooldown_s: float = 300.0, sync_s: float = 15.0, min_instances: int = 1,
                 max_instances: int = 8) -> None:
        # No freeze (not even the comparison's): the tolerances, rate limits and cooldown play that part.
        super().__init__(min_instances, max_instances, 0.0, sync_s)
        if not 0 < target <= 1 or up_tolerance < 0 or not 0 <= down_tolerance < 1:
            raise ValueError(f"apa needs 0 < target <= 1, up_tolerance >= 0, 0 <= down_tolerance < 1; got {target}, "
                             f"{up_tolerance}, {down_tolerance}")
        if max_scale_up_rate < 1 or max_scale_down_rate < 1 or window_s <= 0 or scale_down_cooldown_s < 0:
            raise ValueError("apa needs rates >= 1, window_s > 0 and scale_down_cooldown_s >= 0")
        self.target, self.up_tolerance, self.down_tolerance = target, up_tolerance, down_tolerance
        self.max_scale_up_rate, self.max_scale_down_rate = max_scale_up_rate, max_scale_down_rate
        self.window_s, self.scale_down_cooldown_s = window_s, scale_down_cooldown_s
        self._samples: deque[tuple[float, float]] = deque()  # (t, mean KV use of the ready pods)
        self._recommendations: deque[tuple[float, int]] = deque()

    def recommend(self, current: int, use: float) -> int:
        """``computeTargetReplicas``: the pods ``current`` ready pods at per-pod ``use`` should become."""
        ratio = use / self.target
        if ratio > 1.0 + self.up_tolerance:
            return min(math.ceil(current * ratio), math.ceil(self.max_scale_up_rate * current))
        if ratio < 1.0 - self.down_tolerance:
            return max(math.ceil(current * ratio), math.floor(current / self.max_scale_down_rate))
        return current

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        ready = fleet.ready()
        if not ready:
            return None  # no pod to read the metric from
        self._samples.append((now, sum(v.kv_utilization for v in ready) / len(ready)))
        while self._samples[0][0] <= now - self.window_s:
            self._samples.popleft()
        use = sum(u for _, u in self._samples) / len(self._samples)
        desired = self.recommend(len(ready), use)
        self._recommendations.append((now, desired))
        while self._recommendations[0][0] < now - self.scale_down_cooldown_s:
            self._recommendations.popleft()
        provisioned = fleet.provisioned
        details = {"kv_utilization": use, "ratio": use / self.target, "desired": float(desired)}
        if desired > provisioned:
            return ScaleDecision(desired, f"apa: kv {use:.2f} / target {self.target} -> {desired}", details)
        stable = max(d for _, d in self._recommendations)
        if stable < provisioned:
            return ScaleDecision(stable, f"apa: highest recommendation over {self.scale_down_cooldown_s:.0f}s is "
                                         f"{stable}", details)
        return None
