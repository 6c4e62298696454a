"""What a control policy sees: the request being placed and a read-only view of one service's fleet.

The same types are filled by the offline simulator (`fleet/`) and by the live `route`/`scale` agents
(`streams/agents/`), so a policy object gives the same decisions in both (tested). They are plain slotted
dataclasses, not pydantic records: the simulator builds and reads them millions of times per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.records import InstanceState

__all__ = ["InstanceState", "RequestInfo", "InstanceView", "FleetView", "CompletionInfo", "ForecastInfo", "RouteChoice",
           "ScaleDecision"]


@dataclass(slots=True, frozen=True)
class RequestInfo:
    """A request at routing time. ``predicted_*`` come from the request-load predictor (or an oracle)."""

    request_id: str
    service: str
    arrival: float
    prompt_tokens: int
    predicted_tokens: float = 0.0
    predicted_p90_tokens: float = 0.0


@dataclass(slots=True)
class InstanceView:
    """One instance at ``now``. Owned and updated in place by the simulator or the route agent.

    Policies must treat it as read-only and must not keep references across calls.
    ``kv_used_tokens`` counts the KV cache of running sequences (prompt + generated so far).
    """

    instance_id: str
    state: InstanceState
    kv_capacity_tokens: int
    running: int = 0
    waiting: int = 0
    kv_used_tokens: int = 0
    waiting_prompt_tokens: int = 0
    start_requested_at: float = 0.0
    ready_at: float | None = None

    @property
    def kv_utilization(self) -> float:
        return self.kv_used_tokens / self.kv_capacity_tokens if self.kv_capacity_tokens else 1.0

    @property
    def is_ready(self) -> bool:
        return self.state is InstanceState.READY


@dataclass(slots=True)
class FleetView:
    """One service's fleet at a moment. ``instances`` excludes stopped instances."""

    service: str
    instances: list[InstanceView]
    min_instances: int
    max_instances: int
    cold_start_s: float = 0.0
    pending: int = 0  # asked for but not yet granted by a full shared GPU pool (Kubernetes: Pending pods)

    def ready(self) -> list[InstanceView]:
        return [i for i in self.instances if i.state is InstanceState.READY]

    def count(self, *states: InstanceState) -> int:
        return sum(1 for i in self.instances if i.state in states)

    @property
    def provisioned(self) -> int:
        """Instances that are, or will be, serving: ready + starting + pending in the pool (draining ones are
        leaving). Counting pending ones, as Kubernetes counts Pending pods as replicas, keeps a scaler from
        re-asking for them every period."""
        return self.count(InstanceState.READY, InstanceState.STARTING) + self.pending


@dataclass(slots=True, frozen=True)
class CompletionInfo:
    """A finished request, as the router/scaler observe it (live: from the `completions` topic)."""

    request_id: str
    instance_id: str
    arrival: float
    finish: float
    prompt_tokens: int
    output_tokens: int
    ttft_s: float


@dataclass(slots=True, frozen=True)
class ForecastInfo:
    """One forecast of one service's token density, as the scaler observes it (live: the `forecasts` topic).

    ``mean``/``upper`` are per-window totals of ``target`` for the windows starting at ``first_window_start``,
    ``first_window_start + window_s``, ... (the density agent's epoch-aligned windows).
    """

    target: str  # "requests" | "prompt_tokens" | "output_tokens"
    first_window_start: float
    window_s: float
    mean: tuple[float, ...]
    upper: tuple[float, ...]
    model: str = ""


@dataclass(slots=True, frozen=True)
class RouteChoice:
    instance_id: str
    score: float | None = None
    reason: str = ""


@dataclass(slots=True, frozen=True)
class ScaleDecision:
    """Desired number of provisioned (ready + starting) instances, and why."""

    target_instances: int
    reason: str
    details: dict[str, float] = field(default_factory=dict)
