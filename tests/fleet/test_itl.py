"""Inter-token latency over tokens: the histogram's resolution, hand-computed gaps of one instance (a sequence
decoding alone, a prefill stall without chunking, a preemption), and a whole simulation's token count.

Cost model LINEAR: a step takes 10 ms + 1 ms per batched token (a decode step of n sequences: 10 + n ms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fleet.engine_instance import EngineInstance
from fleet.itl import FLUSH_AT, HI, LO, REL, ItlHistogram
from fleet.metrics import summarize
from fleet.pool import InstancePool
from fleet.pool_simulator import merge_results, simulate_pool
from fleet.sim_types import SimRequest
from fleet.simulator import Simulator, simulate
from streams.policies.routers.least_requests_router import LeastRequestsRouter
from streams.policies.scalers.fixed_scaler import FixedScaler
from tests.fleet.sim_fixtures import WITH_CTX, config, engine, random_workload


def _drain(inst: EngineInstance) -> None:
    while inst.next_event_time() != math.inf:
        inst.advance(inst.next_event_time())


def _at(h: ItlHistogram, gap_s: float) -> float:
    """Weight in the bin of ``gap_s``."""
    return float(h.weights[h.bin_of(gap_s)])


# ---- the histogram ---------------------------------------------------------------------------------------
def test_percentiles_are_within_a_quarter_percent_of_the_exact_weighted_percentile() -> None:
    rng = np.random.default_rng(0)
    gaps = rng.lognormal(math.log(0.02), 1.0, 5000)
    weights = rng.integers(1, 50, 5000).astype(float)
    h = ItlHistogram()
    for g, w in zip(gaps.tolist(), weights.tolist(), strict=True):
        h.add(g, w)
    order = np.argsort(gaps)
    cum = np.cumsum(weights[order])
    for q in (1, 50, 90, 99, 99.9):
        exact = gaps[order][np.searchsorted(cum, q / 100 * cum[-1])]  # lower weighted percentile
        assert h.percentile(q) == pytest.approx(exact, rel=math.sqrt(1 + REL) - 1 + 1e-9)
    assert h.total == weights.sum()
    assert h.mean() == pytest.approx(float((gaps * weights).sum() / weights.sum()), rel=1e-12)


def test_bins_merge_and_edges() -> None:
    h = ItlHistogram()
    assert h.percentile(99) is None and h.mean() is None
    h.add(0.0, 2.0)  # below LO: the underflow bin, read as LO
    h.add(5e3, 1.0)  # above HI: the overflow bin, read as HI
    assert h.percentile(0) == LO and h.percentile(50) == LO and h.percentile(100) == HI
    other = ItlHistogram()
    other.add(0.02, 7.0)
    h.merge(other)
    assert (h.total, h.sum) == (10.0, 5e3 + 0.14)
    assert h.percentile(50) == pytest.approx(0.02, rel=0.0026)
    assert ItlHistogram.bin_of(LO) == 1 and ItlHistogram.bin_of(HI * 0.999) == len(h.weights) - 2
    assert ItlHistogram.bin_of(0.02 * (1 + REL) ** 1.5) == ItlHistogram.bin_of(0.02) + 1  # 0.5% apart
    with pytest.raises(ValueError):
        h.percentile(101)


# ---- one instance, by hand -----------------------------------------------------------------------------------
def test_one_sequence_decoding_alone_has_gaps_equal_to_its_steps() -> None:
    inst = EngineInstance(engine(), "i0", check_invariants=True)
    a = SimRequest(0, "a", 0.0, 10, 5)
    inst.add_request(a, 0.0)
    _drain(inst)
    assert a.first_token_s == pytest.approx(0.02) and a.finish_s == pytest.approx(0.064)
    assert inst.itl.total == 4 and _at(inst.itl, 0.011) == 4  # four decode steps of one sequence: 11 ms
    assert inst.itl.sum == pytest.approx(0.044)


def test_a_prefill_only_step_stalls_the_decodes_and_the_stall_is_a_gap() -> None:
    """A (10 prompt, 200 out) decodes from 0.02; B (50, 3) arrives at 0.05: A's run is cut at the step ending
    0.053, B's prefill-only step runs 0.053-0.113 (A waits), then both decode (12 ms steps): A's next token
    comes at 0.125, 72 ms after its previous one; B's after 12 ms."""
    inst = EngineInstance(engine(), "i0", check_invariants=True)
    a = SimRequest(0, "a", 0.0, 10, 200)
    b = SimRequest(1, "b", 0.05, 50, 3)
    inst.add_request(a, 0.0)
    inst.advance(0.05)
    inst.add_request(b, 0.05)
    _drain(inst)
    assert b.first_token_s == pytest.approx(0.113) and b.finish_s == pytest.approx(0.137)
    h = inst.itl
    assert _at(h, 0.072) == 1  # the stall, once (A's)
    assert _at(h, 0.012) == 3  # B's first gap, then a step of both
    assert _at(h, 0.011) == 199 - 2  # A's other gaps
    assert h.total == 199 + 2
    assert h.sum == pytest.approx((a.finish_s - a.first_token_s) + (b.finish_s - b.first_token_s), abs=1e-12)
    assert h.percentile(100) == pytest.approx(0.072, rel=0.0026)


def test_a_preempted_sequence_counts_its_wait_for_the_re_prefill() -> None:
    """6 KV blocks of 16; A and B (16 prompt, 40 out) at 0. A prefills (first token 0.026), B's prefill stalls it
    (0.052; A's next gap 38 ms), both decode 31 steps of 12 ms, then need 2 blocks with none free: B (the newer)
    is preempted at 0.424 holding 32 tokens. A finishes alone (8 steps of 11 ms, 0.512); B re-prefills 48 tokens
    (58 ms): its 33rd token at 0.570 is 146 ms after its 32nd; then 7 steps of 11 ms."""
    inst = EngineInstance(engine(kv_tokens=96, max_len=96), "i0", check_invariants=True)
    a = SimRequest(0, "a", 0.0, 16, 40)
    b = SimRequest(1, "b", 0.0, 16, 40)
    inst.add_request(a, 0.0)
    inst.add_request(b, 0.0)
    _drain(inst)
    assert (a.preemptions, b.preemptions) == (0, 1)
    assert a.finish_s == pytest.approx(0.512) and b.finish_s == pytest.approx(0.647)
    h = inst.itl
    assert _at(h, 0.146) == 1 and _at(h, 0.038) == 1
    assert _at(h, 0.012) == 30 + 31 and _at(h, 0.011) == 8 + 7
    assert h.total == 2 * 39
    assert h.sum == pytest.approx(a.finish_s - a.first_token_s + b.finish_s - b.first_token_s, abs=1e-12)


# ---- whole runs ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_token_after_the_first_is_one_gap_and_gaps_telescope(chunked: bool, seed: int) -> None:
    """A random workload on a small cache (preemptions, cut runs, prefill stalls) run to completion: the weight is
    the tokens after each request's first, and the gaps of a request sum to its finish - first token (the mean
    step stands for a run's steps, and their sum is exact)."""
    w = random_workload(300, rate=30.0, seed=seed, max_prompt=500, max_output=250)
    eng = engine(chunked=chunked, kv_tokens=2048, max_len=800, max_batched=1024, cost=WITH_CTX)
    res = simulate(w, config(eng, initial=2), LeastRequestsRouter(), FixedScaler(n=2))
    assert res.completed.all() and res.preemptions.sum() > 0
    assert res.itl.total == int((res.output_tokens - 1).sum())
    assert res.itl.sum == pytest.approx(float((res.finish - res.first_token).sum()), rel=1e-12)
    row = summarize(res, slo_ttft_s=1.0, slo_tpot_s=0.1)
    assert row["p50_itl_s"] == res.itl.percentile(50) and row["p99_itl_s"] == res.itl.percentile(99)
    assert 0 < row["p50_itl_s"] <= row["p99_itl_s"]


def test_a_pooled_run_merges_every_services_gaps() -> None:
    """Two services on one pool: the merged result's ITL holds both services' tokens, no more, no fewer."""
    eng = engine(kv_tokens=2048, cost=WITH_CTX)
    pool = InstancePool(3)
    sims = [Simulator(random_workload(150, 10.0, seed=s), config(eng, initial=1, check=False, max_instances=3),
                      LeastRequestsRouter(), FixedScaler(n=1), pool=pool) for s in (3, 4)]
    run = simulate_pool(sims, pool)
    merged = merge_results(run.results, ["a", "b"])
    assert merged.completed.all()
    assert [r.itl.total for r in run.results] == [int((r.output_tokens - 1).sum()) for r in run.results]
    assert merged.itl.total == sum(r.itl.total for r in run.results) == int((merged.output_tokens - 1).sum())
    assert summarize(merged, 1.0, 0.1)["p99_itl_s"] == merged.itl.percentile(99) is not None


def test_buffered_pairs_are_binned_in_blocks_without_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engines flush every FLUSH_AT pairs (here 4): the same run gives the same histogram as one flush."""
    w = random_workload(120, rate=30.0, seed=5, max_prompt=400, max_output=150)
    eng = engine(kv_tokens=2048, max_len=800, max_batched=1024, cost=WITH_CTX)
    whole = simulate(w, config(eng, initial=2), LeastRequestsRouter(), FixedScaler(n=2)).itl
    monkeypatch.setattr("fleet.engine_instance.FLUSH_AT", 4)
    blocks = simulate(w, config(eng, initial=2), LeastRequestsRouter(), FixedScaler(n=2)).itl
    assert len(blocks.gaps) < 4  # flushed along the way
    np.testing.assert_array_equal(blocks.weights, whole.weights)
    assert blocks.total == whole.total and blocks.sum == pytest.approx(whole.sum, rel=1e-12)
    h = ItlHistogram()
    for _ in range(FLUSH_AT + 10):  # add() flushes by itself at FLUSH_AT
        h.add(0.01, 2.0)
    assert len(h.gaps) == 10 and h.total == 2.0 * (FLUSH_AT + 10)
