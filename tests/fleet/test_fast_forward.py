"""Fast-forwarded decode runs give the same timeline as a plain per-step engine loop built on the cost model."""

from __future__ import annotations

import random

import pytest

from fleet.engine_instance import EngineInstance
from fleet.sim_types import SimRequest
from streams.policies.cost_model import CostModel
from tests.fleet.sim_fixtures import WITH_CTX, engine


def reference_finish_times(cost: CostModel, reqs: list[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """vLLM V0 without chunking, one step at a time, unlimited KV: (first token, finish) per request."""
    n = len(reqs)
    out: list[list[float]] = [[-1.0, -1.0] for _ in range(n)]
    waiting: list[int] = []
    running: dict[int, int] = {}  # request -> tokens generated
    t, nxt = 0.0, 0
    while nxt < n or waiting or running:
        while nxt < n and reqs[nxt][0] <= t:
            waiting.append(nxt)
            nxt += 1
        if not waiting and not running:
            t = reqs[nxt][0]
            continue
        if waiting:
            batch, waiting = waiting, []
            tokens = [reqs[i][1] for i in batch]
            t += cost.step_time(sum(tokens), 0, 0, float(sum(x * x for x in tokens)))
            for i in batch:
                out[i][0] = t
                if reqs[i][2] == 1:
                    out[i][1] = t
                else:
                    running[i] = 1
            continue
        ctx = sum(reqs[i][1] + g for i, g in running.items())
        t += cost.step_time(0, len(running), ctx)
        for i in list(running):
            running[i] += 1
            if running[i] == reqs[i][2]:
                out[i][1] = t
                del running[i]
    return [(a, b) for a, b in out]


@pytest.mark.parametrize("seed", range(4))
def test_fast_forward_matches_per_step_reference(seed: int) -> None:
    rng = random.Random(seed)
    t = 0.0
    reqs = []
    for _ in range(60):
        t += rng.expovariate(8.0)
        reqs.append((t, rng.randint(1, 300), rng.randint(1, 120)))
    inst = EngineInstance(engine(kv_tokens=1 << 20, max_len=512, max_batched=1 << 16, max_seqs=1024, cost=WITH_CTX),
                          "i0", check_invariants=True)
    sims = []
    for i, (arrival, prompt, output) in enumerate(reqs):
        inst.advance(arrival)
        r = SimRequest(i, f"r{i}", arrival, prompt, output)
        inst.add_request(r, arrival)
        sims.append(r)
    while inst.next_event_time() != float("inf"):
        inst.advance(inst.next_event_time())
    expected = reference_finish_times(WITH_CTX, reqs)
    for r, (first, finish) in zip(sims, expected, strict=True):
        assert r.first_token_s == pytest.approx(first, abs=1e-9)
        assert r.finish_s == pytest.approx(finish, abs=1e-9)


def reference_chunked(cost: CostModel, reqs: list[tuple[float, int, int]], budget: int) -> list[tuple[float, float]]:
    """Chunked prefill (vLLM V1 / Sarathi), one step at a time, unlimited KV: (first token, finish) per request."""
    n = len(reqs)
    out: list[list[float]] = [[-1.0, -1.0] for _ in range(n)]
    queue: list[int] = []  # admitted or waiting, prompt not done, FCFS
    done_tokens = [0] * n
    running: dict[int, int] = {}
    t, nxt = 0.0, 0
    while nxt < n or queue or running:
        while nxt < n and reqs[nxt][0] <= t:
            queue.append(nxt)
            nxt += 1
        if not queue and not running:
            t = reqs[nxt][0]
            continue
        left = budget - len(running)
        chunks = []
        for i in queue:
            if left <= 0:
                break
            c = min(reqs[i][1] - done_tokens[i], left)
            chunks.append((i, c))
            left -= c
        ctx = sum(reqs[i][1] + g for i, g in running.items())
        tokens = sum(c for _, c in chunks)
        pairs = float(sum(c * (done_tokens[i] + c) for i, c in chunks))
        t += cost.step_time(tokens, len(running), ctx, pairs) if tokens else cost.step_time(0, len(running), ctx)
        for i in list(running):
            running[i] += 1
            if running[i] == reqs[i][2]:
                out[i][1] = t
                del running[i]
        for i, c in chunks:
            done_tokens[i] += c
            if done_tokens[i] == reqs[i][1]:
                queue.remove(i)
                out[i][0] = t
                if reqs[i][2] == 1:
                    out[i][1] = t
                else:
                    running[i] = 1
    return [(a, b) for a, b in out]


@pytest.mark.parametrize("seed", range(3))
def test_chunked_fast_forward_matches_per_step_reference(seed: int) -> None:
    rng = random.Random(100 + seed)
    t = 0.0
    reqs = []
    for _ in range(50):
        t += rng.expovariate(6.0)
        reqs.append((t, rng.randint(1, 500), rng.randint(1, 80)))
    budget = 256
    inst = EngineInstance(engine(chunked=True, kv_tokens=1 << 20, max_len=600, max_batched=budget, max_seqs=1024,
                                 cost=WITH_CTX), "i0", check_invariants=True)
    sims = []
    for i, (arrival, prompt, output) in enumerate(reqs):
        inst.advance(arrival)
        r = SimRequest(i, f"r{i}", arrival, prompt, output)
        inst.add_request(r, arrival)
        sims.append(r)
    while inst.next_event_time() != float("inf"):
        inst.advance(inst.next_event_time())
    for r, (first, finish) in zip(sims, reference_chunked(WITH_CTX, reqs, budget), strict=True):
        assert r.first_token_s == pytest.approx(first, abs=1e-9)
        assert r.finish_s == pytest.approx(finish, abs=1e-9)
