"""KEDA-style scaling on queue depth (vLLM's ``num_requests_waiting``) with HPA semantics.

KEDA feeds the metric to the HPA, which computes ``desired = ceil(total waiting / threshold)`` (an average
target per replica), scales up at once and scales down only to the highest desire seen over the
stabilisation window (``cooldown``). Polled every ``interval`` seconds (KEDA's pollingInterval).
"""

from __future__ import annotations

import math
from collections import deque

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler

__all__ = ["QueueDepthScaler"]


@register_scaler("queue-depth")
class QueueDepthScaler(BaseScaler):
    """:param threshold: target waiting requests per instance (KEDA's ``threshold``).
    :param interval: polling interval in seconds (sets ``interval_s``).
    :param cooldown: scale-down stabilisation window in seconds.
    """

    TRACE_TIME_PARAMS = ("freeze_s", "interval", "interval_s", "cooldown")

    def __init__(self, threshold: float = 5.0, interval: float = 15.0, cooldown: float = 300.0,
                 min_instances: int = 1, max_instances: int = 8, freeze_s: float = 60.0,
                 interval_s: float | None = None) -> None:
        super().__init__(min_instances, max_instances, freeze_s, interval if interval_s is None else interval_s)
        if threshold <= 0 or cooldown < 0:
            raise ValueError(f"queue-depth needs threshold > 0 and cooldown >= 0, got {threshold}, {cooldown}")
        self.threshold, self.cooldown = threshold, cooldown
        self._desires: deque[tuple[float, int]] = deque()
        self._started_at: float | None = None  # no scale-down before one full window has been observed

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        waiting = sum(v.waiting for v in fleet.instances)
        current = fleet.provisioned
        desired = math.ceil(waiting / self.threshold)
        if self._started_at is None:
            self._started_at = now
        self._desires.append((now, desired))
        while self._desires and self._desires[0][0] < now - self.cooldown:
            self._desires.popleft()
        details = {"waiting": float(waiting), "desired": float(desired)}
        if desired > current:
            return ScaleDecision(desired, f"{waiting} waiting / threshold {self.threshold} -> {desired}", details)
        stable = max(d for _, d in self._desires)
        if stable < current and now - self._started_at >= self.cooldown:
            return ScaleDecision(stable, f"max desire over {self.cooldown:.0f}s is {stable}", details)
        return None
