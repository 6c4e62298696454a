"""Small engines, workloads and policies for the simulator tests (plain helpers, imported by the tests)."""

from __future__ import annotations

import numpy as np

from fleet.sim_inputs import SimConfig, Workload
from streams.policies.cost_model import CostModel
from streams.policies.engine_profiles import EngineConfig

# step time = 10 ms + 1 ms per batched token: easy to compute by hand.
LINEAR = CostModel(c0=0.01, c_tok=0.001, c_tok_hinge=0.0, c_seq=0.0, c_ctx=0.0, c_pf_attn=0.0)
# with attention growing in the context, so decode runs have unequal steps.
WITH_CTX = CostModel(c0=0.01, c_tok=0.0005, c_tok_hinge=0.0, c_seq=0.0001, c_ctx=1e-6, c_pf_attn=1e-9)


def engine(chunked: bool = False, kv_tokens: int = 1024, max_batched: int = 512, max_len: int = 512,
           max_seqs: int = 64, cold_start: float = 5.0, cost: CostModel = LINEAR) -> EngineConfig:
    return EngineConfig(name="test", gpu="test", model="test", kv_capacity_tokens=kv_tokens, cost_model=cost,
                        block_size=16, max_num_seqs=max_seqs, max_batched_tokens=max_batched,
                        chunked_prefill=chunked, max_model_len=max_len, cold_start_s=cold_start)


def workload(arrival: list[float], prompt: list[int], output: list[int]) -> Workload:
    return Workload(np.asarray(arrival, float), np.asarray(prompt, np.int64), np.asarray(output, np.int64),
                    [f"r{i}" for i in range(len(arrival))])


def random_workload(n: int, rate: float, seed: int, max_prompt: int = 300, max_output: int = 200) -> Workload:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    prompt = rng.integers(1, max_prompt, n)
    output = rng.integers(1, max_output, n)
    return Workload(arrival, prompt, output, [f"r{i}" for i in range(n)])


def config(eng: EngineConfig, initial: int = 1, check: bool = True, **kw: object) -> SimConfig:
    return SimConfig(engine=eng, initial_instances=initial, check_invariants=check, **kw)  # type: ignore[arg-type]
