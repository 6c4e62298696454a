"""Instances a window's load needs, from its arrivals and the engine profile: shared by the schedules (the
future-knowing oracle, the time-of-day schedule fitted on the previous day) and the interval planner."""

from __future__ import annotations

from collections.abc import Sequence

from streams.policies.engine_profiles import EngineConfig
from streams.policies.scalers.instance_capacity import capacity_at

__all__ = ["instances_per_window", "instances_for"]


def instances_for(engine: EngineConfig, tpot_target_s: float, window_s: float, requests: int, prompt_tokens: float,
                  output_tokens: float) -> float:
    """Instances (fractional) that a window's totals keep busy, at the window's own request mix."""
    if requests <= 0:
        return 0.0
    cap = capacity_at(engine.cost_model, engine.kv_capacity_tokens, engine.max_num_seqs, prompt_tokens / requests,
                      output_tokens / requests, tpot_target_s)
    return cap.utilisation(prompt_tokens / window_s, output_tokens / window_s)


def instances_per_window(arrivals: Sequence[tuple[float, int, int]], window_s: float, engine: EngineConfig,
                         tpot_target_s: float) -> list[float]:
    """Per window ``[k w, (k+1) w)`` of the arrivals' time base, the instances its load keeps busy."""
    if not arrivals:
        return []
    n = int(max(t for t, _, _ in arrivals) // window_s) + 1
    prompt, gen, reqs = [0.0] * n, [0.0] * n, [0] * n
    for t, p, o in arrivals:
        w = int(t // window_s)
        prompt[w] += p
        gen[w] += o
        reqs[w] += 1
    return [instances_for(engine, tpot_target_s, window_s, reqs[w], prompt[w], gen[w]) for w in range(n)]
