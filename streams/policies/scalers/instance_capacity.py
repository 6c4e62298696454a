"""Profiled capacity of one instance, derived from the engine preset's step-time cost model.

The question the scaler asks: how many prompt tokens/s and generated tokens/s can one instance sustain
while keeping TPOT under the SLO and the KV cache from overflowing? With a request mix of mean prompt P and
mean output O, an instance running ``n`` sequences spends ``c_p`` seconds per prompt token (the marginal cost
of prefill tokens riding in a step) and ``tau(n) / n`` seconds per generated token (one decode step of ``n``
sequences). The largest admissible ``n`` (TPOT, KV share, max sequences) is the operating point. Then
``utilisation = prompt_rate * c_p + gen_rate * tau(n) / n``: a load of utilisation 1 is exactly what one
instance sustains (``1 / c_p`` and ``n / tau(n)`` are the per-instance token capacities).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

__all__ = ["StepCost", "InstanceCapacity", "capacity_at"]


class StepCost(Hashable, Protocol):
    """A step-time model (``streams.policies.cost_model.CostModel``); hashable so capacities can be cached."""

    def step_time(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                  prefill_pairs: float | None = None) -> float: ...


@dataclass(frozen=True)
class InstanceCapacity:
    """Seconds of one instance per prompt token and per generated token at the operating batch."""

    s_per_prompt_token: float
    s_per_gen_token: float
    batch: int
    step_s: float

    @property
    def prompt_tokens_per_s(self) -> float:
        return 1.0 / self.s_per_prompt_token

    @property
    def gen_tokens_per_s(self) -> float:
        return 1.0 / self.s_per_gen_token

    def utilisation(self, prompt_rate: float, gen_rate: float) -> float:
        """Instances' worth of work per second that these token rates represent."""
        return prompt_rate * self.s_per_prompt_token + gen_rate * self.s_per_gen_token


def capacity_at(cost: StepCost, kv_capacity_tokens: int, max_num_seqs: int, mean_prompt: float,
                mean_output: float, tpot_target_s: float, kv_fill: float = 0.9) -> InstanceCapacity:
    """Operating point for a request mix; rounded inputs are cached (called every scaler tick)."""
    return _capacity(cost, int(kv_capacity_tokens), int(max_num_seqs), _round(mean_prompt),
                     _round(mean_output), round(tpot_target_s, 4), round(kv_fill, 3))


def _round(x: float) -> int:
    """Round to ~2 significant digits so the cache stays small while the mix drifts."""
    x = max(1.0, float(x))
    step = 10 ** max(0, len(str(int(x))) - 2)
    return int(round(x / step) * step) or 1


@lru_cache(maxsize=4096)
def _capacity(cost: StepCost, kv_capacity: int, max_seqs: int, prompt: int, output: int, tpot: float,
              kv_fill: float) -> InstanceCapacity:
    ctx = prompt + output / 2.0  # mean KV length of a running sequence
    kv_bound = max(1, int(kv_fill * kv_capacity / max(ctx, 1.0)))
    n_max = max(1, min(max_seqs, kv_bound))
    best = 1
    for n in range(1, n_max + 1):
        step = cost.step_time(0, n, int(n * ctx))
        # a step that also carries its share of prefill must stay under the TPOT target
        if step <= tpot:
            best = n
        else:
            break
    step = cost.step_time(0, best, int(best * ctx))
    with_prefill = cost.step_time(prompt, best, int(best * ctx), float(prompt) * prompt)
    s_prompt = max((with_prefill - step) / prompt, 1e-9)
    return InstanceCapacity(s_per_prompt_token=s_prompt, s_per_gen_token=step / best, batch=best, step_s=step)
