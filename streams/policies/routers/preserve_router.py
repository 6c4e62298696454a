"""PreServe's load-aware router: argmin over READY instances of prefill backlog + anticipated token usage.

Score of instance j for a request with prompt P and conservative (p90) predicted output L (in tokens):

    2 * (P + prefill backlog of j)                 # prefill work ahead of the request (TTFT)
  + peak_j(P, L)                                   # peak anticipated KV usage while the request runs
  + overflow_weight * max(0, peak_j - kv_fill * capacity_j)   # memory pressure -> queueing/preemption

``peak_j`` comes from the instance's :class:`LoadAnticipator` (what is routed there, projected with the
predicted remaining lengths), raised to the instance's measured KV use when that is higher (the anticipator
does not see preemptions or prefill queues). The paper's score is the first two terms; the overflow term
keeps a request away from an instance that is about to fill up, which is what turns into TTFT.

The prefill backlog is the larger of the instance's queued prompt tokens and a leaky bucket of the prompt
tokens routed to it (drained at the engine's prefill rate, from the preset's cost model): a prompt that has
been admitted but not yet prefilled no longer shows as queued, yet still delays the next request's first
token.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceView, RequestInfo, RouteChoice
from streams.policies.load_anticipator import AnticipatorConfig, LoadAnticipator
from streams.policies.policy_registry import register_router

__all__ = ["PreServeRouter"]


@register_router("preserve")
class PreServeRouter(BaseRouter):
    """Load-aware router over per-instance load anticipators.

    The request-length predictor that fills ``RequestInfo.predicted_*`` is the policy spec's router parameter
    ``predictor=`` (read by the builder's ``predictor_for`` for both drivers); the router only reads predictions.

    :param prefill_weight: weight of prefill tokens (the request's and the instance's queue), paper: 2.
    :param overflow_weight: extra weight of anticipated tokens beyond ``kv_fill`` of the KV capacity.
    :param kv_fill: share of the KV cache above which anticipated load counts as overflow.
    :param decode_tokens_per_s: prior per-sequence decode rate of the anticipators (learned online after).
    :param horizon_s: projection horizon of the anticipators.
    """

    def __init__(self, prefill_weight: float = 2.0, overflow_weight: float = 0.0,
                 kv_fill: float = 0.9, decode_tokens_per_s: float = 30.0, horizon_s: float = 30.0,
                 bucket_s: float = 1.0, engine: str | None = "llama2-7b-h100",
                 prefill_tokens_per_s: float | None = None, **unknown: Any) -> None:
        if unknown:
            raise TypeError(f"unknown parameters for router 'preserve': {sorted(unknown)}")
        if prefill_weight < 0 or overflow_weight < 0 or not 0 < kv_fill <= 1:
            raise ValueError("need prefill_weight >= 0, overflow_weight >= 0 and 0 < kv_fill <= 1")
        self.prefill_weight = prefill_weight
        self.overflow_weight = overflow_weight
        self.kv_fill = kv_fill
        self.anticipator_config = AnticipatorConfig(horizon_s=horizon_s, bucket_s=bucket_s,
                                                    decode_tokens_per_s=decode_tokens_per_s)
        self.anticipators: dict[str, LoadAnticipator] = {}
        self._routed_to: dict[str, str] = {}
        self.prefill_rate = prefill_tokens_per_s or _prefill_rate(engine)
        self._backlog: dict[str, tuple[float, float]] = {}  # instance -> (prefill tokens, at time)

    def anticipator(self, instance_id: str) -> LoadAnticipator:
        a = self.anticipators.get(instance_id)
        if a is None:
            a = self.anticipators[instance_id] = LoadAnticipator(self._config_for_new())
        return a

    def _config_for_new(self) -> AnticipatorConfig:
        """A new instance starts from the fleet's learned decode rate rather than the prior."""
        if not self.anticipators:
            return self.anticipator_config
        rates = [a.rate for a in self.anticipators.values()]
        return replace(self.anticipator_config, decode_tokens_per_s=sum(rates) / len(rates))

    def score(self, request: RequestInfo, inst: InstanceView, now: float) -> float:
        """Lower is better; see the module docstring."""
        out = request.predicted_p90_tokens or request.predicted_tokens
        a = self.anticipator(inst.instance_id)
        peak = a.peak_with(request.prompt_tokens, out, now)
        measured = inst.kv_used_tokens + inst.waiting_prompt_tokens + request.prompt_tokens
        peak = max(peak, measured)
        overflow = max(0.0, peak - self.kv_fill * inst.kv_capacity_tokens)
        backlog = request.prompt_tokens + max(inst.waiting_prompt_tokens, self.prefill_backlog(inst.instance_id, now))
        return self.prefill_weight * backlog + peak + self.overflow_weight * overflow

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        best: tuple[float, int, str] | None = None
        for inst in fleet.instances:
            if not inst.is_ready:
                continue
            key = (self.score(request, inst, now), inst.running + inst.waiting, inst.instance_id)
            if best is None or key < best:
                best = key
        if best is None:
            raise NoReadyInstance(f"no ready instance for {request.request_id}")
        return RouteChoice(best[2], best[0], "min prefill backlog + anticipated token usage")

    def prefill_backlog(self, instance_id: str, now: float) -> float:
        """Prompt tokens routed to the instance and, at the engine's prefill rate, not yet prefilled."""
        tokens, at = self._backlog.get(instance_id, (0.0, now))
        return max(0.0, tokens - self.prefill_rate * (now - at))

    def on_routed(self, request: RequestInfo, instance_id: str, now: float) -> None:
        self._backlog[instance_id] = (self.prefill_backlog(instance_id, now) + request.prompt_tokens, now)
        out = request.predicted_p90_tokens or request.predicted_tokens
        self.anticipator(instance_id).add(request.request_id, request.prompt_tokens, out, now)
        self._routed_to[request.request_id] = instance_id

    def on_completed(self, completion: CompletionInfo, now: float) -> None:
        inst = self._routed_to.pop(completion.request_id, completion.instance_id)
        a = self.anticipators.get(inst)
        if a is not None:
            a.complete(completion.request_id, completion.output_tokens, completion.finish - completion.arrival,
                       completion.ttft_s, now)

    def on_instance_removed(self, instance_id: str, now: float) -> None:
        self.anticipators.pop(instance_id, None)
        self._backlog.pop(instance_id, None)


def _prefill_rate(engine: str | None) -> float:
    """Prompt tokens/s one instance prefills in full chunks (from the preset's cost model)."""
    if engine is None:
        return 40_000.0
    from streams.policies.engine_profiles import get_preset  # the preset lives with the simulator

    e = get_preset(engine)
    chunk = e.max_batched_tokens
    return chunk / e.cost_model.step_time(chunk, 0, 0, float(chunk) * chunk / 2)
