"""llm-d style token load: in-flight tokens per instance, prompt + expected output of every routed request.

The router keeps its own ledger through ``on_routed`` / ``on_completed`` (what it placed, not what the engine
reports), as llm-d's inference scheduler does. The expected output is the request-load prediction when one
is given, else the running mean of completed outputs (a fixed prior until the first completion).
"""

from __future__ import annotations

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import CompletionInfo, FleetView, RequestInfo, RouteChoice
from streams.policies.policy_registry import register_router

__all__ = ["TokenLoadRouter"]


@register_router("token-load")
class TokenLoadRouter(BaseRouter):
    """:param prior_output_tokens: expected output before any prediction or completion is seen."""

    def __init__(self, prior_output_tokens: float = 200.0) -> None:
        if prior_output_tokens < 0:
            raise ValueError("prior_output_tokens must be >= 0")
        self._load: dict[str, float] = {}
        self._placed: dict[str, tuple[str, float]] = {}
        self._out_sum = 0.0
        self._out_n = 0
        self._prior = prior_output_tokens

    def expected_output(self, request: RequestInfo) -> float:
        if request.predicted_tokens > 0:
            return request.predicted_tokens
        return self._out_sum / self._out_n if self._out_n else self._prior

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        best = None
        best_load = 0.0
        for v in fleet.instances:
            if v.is_ready:
                load = self._load.get(v.instance_id, 0.0)
                if best is None or load < best_load:
                    best, best_load = v, load
        if best is None:
            raise NoReadyInstance(fleet.service)
        return RouteChoice(best.instance_id, best_load, "token-load")

    def on_routed(self, request: RequestInfo, instance_id: str, now: float) -> None:
        tokens = request.prompt_tokens + self.expected_output(request)
        self._placed[request.request_id] = (instance_id, tokens)
        self._load[instance_id] = self._load.get(instance_id, 0.0) + tokens

    def on_completed(self, completion: CompletionInfo, now: float) -> None:
        self._out_sum += completion.output_tokens
        self._out_n += 1
        placed = self._placed.pop(completion.request_id, None)
        if placed is not None and placed[0] in self._load:
            self._load[placed[0]] = max(0.0, self._load[placed[0]] - placed[1])

    def on_instance_removed(self, instance_id: str, now: float) -> None:
        self._load.pop(instance_id, None)
