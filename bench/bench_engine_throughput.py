"""Offline throughput of one simulated instance per engine preset, the way `vllm bench throughput` measures a real one:
1,000 requests all queued at t=0, one instance, throughput = tokens / makespan. For comparing the presets with
published vLLM figures (fleet/calibration/README.md). Run: ``python -m bench.bench_engine_throughput``.
"""

from __future__ import annotations

import numpy as np

from fleet.sim_inputs import SimConfig, Workload
from fleet.simulator import simulate
from replay.length_pool import load_prompt_corpus
from streams.policies.builder import build_policy
from streams.policies.engine_profiles import get_preset
from streams.policies.policy_registry import parse_policy
from streams.settings import data_path


def main() -> None:
    sg = load_prompt_corpus([data_path('prompts', 'sharegpt_pairs.jsonl.gz')])
    for preset in ("llama2-7b-h100", "llama2-13b-h100"):
        for name, (p, o) in {"in128/out128": (np.full(1000,128), np.full(1000,128)), "in1024/out128": (np.full(1000,1024), np.full(1000,128)),
                             "sharegpt": (sg.prompt_tokens.to_numpy()[:1000], sg.response_tokens.to_numpy()[:1000])}.items():
            w = Workload(np.zeros(1000), p, o, [str(i) for i in range(1000)])
            r, s = build_policy(parse_policy("least-requests:fixed(n=1)"))
            res = simulate(w, SimConfig(engine=get_preset(preset)), r, s)
            span = np.nanmax(res.finish)
            print(f"{preset} {name}: {1000/span:.1f} req/s, {res.output_tokens.sum()/span:,.0f} output tok/s, {(res.output_tokens.sum()+res.prompt_tokens.sum())/span:,.0f} total tok/s, preemptions {res.preemptions.sum()}")


if __name__ == "__main__":
    main()
