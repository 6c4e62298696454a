"""Load anticipator: projection, corrections (extend / roll back), rate learning, and its cost per query."""

from __future__ import annotations

import time

import pytest

from streams.policies.load_anticipator import AnticipatorConfig, LoadAnticipator

RATE = 10.0  # tokens/s per sequence: easy arithmetic


def make(**kw: float) -> LoadAnticipator:
    cfg = {"horizon_s": 30.0, "bucket_s": 1.0, "decode_tokens_per_s": RATE, "growth": 1.5,
           "min_extend_tokens": 16.0, **kw}
    return LoadAnticipator(AnticipatorConfig(**cfg))


def test_current_load_counts_prompt_plus_generated_so_far() -> None:
    a = make()
    a.add("r1", 100, 50, now=1000.0)  # ends at 1005
    assert a.current_load(1000.0) == pytest.approx(100)
    assert a.current_load(1002.0) == pytest.approx(120)
    a.add("r2", 30, 100, now=1002.0)
    assert a.current_load(1003.0) == pytest.approx(100 + 30 + 30 + 10)


def test_projection_drops_requests_after_their_expected_end() -> None:
    a = make()
    a.add("short", 100, 20, now=0.0)  # ends at 2 s
    a.add("long", 100, 200, now=0.0)  # ends at 20 s
    t0, loads = a.profile(0.0)
    assert t0 == pytest.approx(1.0)
    assert loads[0] == pytest.approx(100 + 10 + 100 + 10)  # t=1: both running
    assert loads[4] == pytest.approx(100 + 50)  # t=5: only "long"
    assert loads[25] == pytest.approx(0)  # t=26: everything ended
    assert a.max_load(0.0, horizon_s=30) == pytest.approx(100 + 200)  # long right before it ends


def test_outliving_a_prediction_extends_it() -> None:
    a = make()
    a.add("r", 100, 20, now=0.0)  # expected end 2 s
    assert a.max_load(0.0, horizon_s=30) <= 100 + 20 + RATE  # bucket granularity
    a.advance(3.0)  # still running at 3 s: extended to max(1.5 x 20, 30 + 16) = 46 tokens
    assert a.extensions == 1
    assert a.in_flight == 1
    assert a.current_load(3.0) == pytest.approx(130)
    assert 100 + 46 - RATE <= a.max_load(3.0, horizon_s=30) <= 100 + 46  # exact at grid points
    _, loads = a.profile(3.0)
    assert loads[-1] == pytest.approx(0)  # the extension is finite


def test_early_end_rolls_back_the_anticipated_tokens() -> None:
    a = make()
    a.add("a", 100, 300, now=0.0)
    a.add("b", 200, 300, now=0.0)
    before = a.max_load(1.0, horizon_s=30)
    a.complete("a", output_tokens=10, e2e_s=1.0, ttft_s=0.1, now=1.0)
    after = a.max_load(1.0, horizon_s=30)
    assert before - after == pytest.approx(100 + 290, rel=0.2)
    a.complete("b", output_tokens=10, e2e_s=1.0, ttft_s=0.1, now=1.0)
    assert a.in_flight == 0 and a.current_load(1.0) == 0
    assert a.max_load(1.0) == 0


def test_decode_rate_is_learned_from_completions_and_ends_recomputed() -> None:
    a = make(rate_ewma=1.0)
    a.add("slow", 0, 100, now=0.0)  # expected end 10 s at 10 tok/s
    a.add("done", 0, 10, now=0.0)
    a.complete("done", output_tokens=21, e2e_s=5.0, ttft_s=1.0, now=5.0)  # 20 tokens in 4 s: 5 tok/s
    assert a.rate == pytest.approx(5.0)
    assert a.current_load(5.0) == pytest.approx(25.0)
    _, loads = a.profile(5.0)
    assert loads[10] > 0  # "slow" now expected to end at 20 s instead of 10 s


def test_forgotten_request_is_dropped_after_model_length() -> None:
    a = make(max_output_tokens=100.0)
    a.add("lost", 10, 20, now=0.0)
    a.advance(50.0)  # 500 tokens at 10 tok/s: longer than any request can be
    assert a.in_flight == 0


def test_query_cost_does_not_grow_with_requests() -> None:
    """Per routing decision the work is O(horizon / bucket), not O(requests)."""
    def per_query(n: int) -> float:
        a = make()
        for i in range(n):
            a.add(f"r{i}", 500, 50 + (i % 200), now=i * 0.001)
        t = n * 0.001
        a.peak_with(100, 100, now=t)  # pays the (amortised) extensions of overdue requests once
        start = time.perf_counter()
        for k in range(200):
            a.add(f"x{k}", 100, 100, now=t)  # invalidates the cached profile each time
            a.peak_with(100, 100, now=t)
        return (time.perf_counter() - start) / 200

    small, large = per_query(100), per_query(20_000)
    assert large < 20 * small + 1e-4  # an O(requests) scan of 20k flights would take milliseconds
