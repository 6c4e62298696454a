"""Knative Pod Autoscaler on request concurrency (in-flight requests per instance), stable and panic modes.

Faithful to Knative's KPA (knative.dev "Additional autoscaling configuration for Knative Pod Autoscaler" and the
``config-autoscaler`` defaults): desired = ceil(mean concurrency over the stable window (60 s) /
(container concurrency x target utilisation 0.7)), evaluated every 2 s tick; the panic window (10% of the
stable window) is used instead when its desire reaches the panic threshold (2x the ready instances); in panic
the revision does not scale down, and it leaves panic after a stable window without reason to panic; a
scale-down removes at most half of the instances per tick (max-scale-down-rate 2).
"""

from __future__ import annotations

import math
from collections import deque

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler

__all__ = ["KPAScaler"]


@register_scaler("kpa")
class KPAScaler(BaseScaler):
    """:param concurrency: requests one instance serves at once (``containerConcurrency``; for an LLM engine its
        running batch, e.g. 32).
    :param utilization: target share of it (``container-concurrency-target-percentage``, 0.7).
    :param stable_s: stable window (60 s). :param panic_share: panic window / stable window (0.1).
    :param panic_threshold: panic when the panic window's desire is this multiple of the ready instances (2.0).
    :param tick_s: evaluation period (2 s).
    """

    TRACE_TIME_PARAMS = ("stable_s", "tick_s")

    def __init__(self, concurrency: float = 32.0, utilization: float = 0.7, stable_s: float = 60.0,
                 panic_share: float = 0.1, panic_threshold: float = 2.0, tick_s: float = 2.0,
                 min_instances: int = 1, max_instances: int = 8) -> None:
        # No freeze (not even the comparison's): the windows and the scale-down rate play that part.
        super().__init__(min_instances, max_instances, 0.0, tick_s)
        if concurrency <= 0 or not 0 < utilization <= 1 or stable_s <= 0 or not 0 < panic_share <= 1:
            raise ValueError("kpa needs concurrency > 0, 0 < utilization <= 1, stable_s > 0, 0 < panic_share <= 1")
        self.per_instance = concurrency * utilization
        self.stable_s, self.panic_s, self.panic_threshold = stable_s, stable_s * panic_share, panic_threshold
        self._samples: deque[tuple[float, float]] = deque()  # (t, total in-flight requests)
        self._panic_until: float | None = None

    def _mean(self, now: float, span: float) -> float:
        vals = [c for t, c in self._samples if t > now - span]
        return sum(vals) / len(vals) if vals else 0.0

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        self._samples.append((now, float(sum(v.running + v.waiting for v in fleet.instances))))
        while self._samples[0][0] <= now - self.stable_s:
            self._samples.popleft()
        current, ready = fleet.provisioned, max(1, len(fleet.ready()))
        stable = math.ceil(self._mean(now, self.stable_s) / self.per_instance - 1e-9)
        panic = math.ceil(self._mean(now, self.panic_s) / self.per_instance - 1e-9)
        if panic >= self.panic_threshold * ready:
            self._panic_until = now + self.stable_s  # (re)enter panic; leave after a calm stable window
        in_panic = self._panic_until is not None and now < self._panic_until
        desired = max(panic, current) if in_panic else stable
        desired = max(desired, math.ceil(current / 2))  # max-scale-down-rate 2
        details = {"stable_desire": float(stable), "panic_desire": float(panic), "panic": float(in_panic)}
        if desired == current:
            return None
        mode = "panic" if in_panic else "stable"
        return ScaleDecision(desired, f"kpa {mode}: concurrency -> {desired}", details)
