"""One simulated instance: hand-computed step times, KV accounting, preemption and recovery."""

from __future__ import annotations

import pytest

from fleet.engine_instance import EngineInstance
from fleet.sim_types import EngineEventKind, SimRequest
from tests.fleet.sim_fixtures import WITH_CTX, engine


def _drain(inst: EngineInstance) -> list:
    events = []
    while inst.next_event_time() != float("inf"):
        events += inst.advance(inst.next_event_time())
    return events


def test_hand_computed_prefill_then_decode() -> None:
    """Step = 10 ms + 1 ms per token. A (100 prompt, 3 out) at 0; B (50, 2) at 0.05 waits for A's prefill."""
    inst = EngineInstance(engine(), "i0", check_invariants=True)
    a = SimRequest(0, "a", 0.0, 100, 3)
    b = SimRequest(1, "b", 0.05, 50, 2)
    inst.add_request(a, 0.0)
    assert inst.next_event_time() == pytest.approx(0.11)
    assert inst.advance(0.05) == []
    inst.add_request(b, 0.05)
    events = _drain(inst)
    assert a.first_token_s == pytest.approx(0.11)  # prefill 0.01 + 0.100
    assert b.first_token_s == pytest.approx(0.17)  # prefill 0.01 + 0.050 after A's
    assert b.finish_s == pytest.approx(0.182)  # one decode step of 2 sequences: 0.012
    assert a.finish_s == pytest.approx(0.193)  # one more of 1 sequence: 0.011
    kinds = [(e.kind, e.request.request_id) for e in events]
    assert kinds == [(EngineEventKind.FIRST_TOKEN, "a"), (EngineEventKind.FIRST_TOKEN, "b"),
                     (EngineEventKind.FINISHED, "b"), (EngineEventKind.FINISHED, "a")]
    assert inst.idle() and inst.used_blocks == 0


def test_hand_computed_chunked_prefill() -> None:
    """Budget 64 tokens: A's prompt takes two chunks, B's first chunk rides with A's second."""
    inst = EngineInstance(engine(chunked=True, max_batched=64), "i0", check_invariants=True)
    a = SimRequest(0, "a", 0.0, 100, 3)
    b = SimRequest(1, "b", 0.05, 50, 2)
    inst.add_request(a, 0.0)
    inst.advance(0.05)
    inst.add_request(b, 0.05)
    _drain(inst)
    assert a.first_token_s == pytest.approx(0.148)  # 64 then 36 + 28 (B) tokens: 0.074 + 0.074
    assert b.first_token_s == pytest.approx(0.181)  # 22 prompt tokens + A's decode: 0.033
    assert a.finish_s == pytest.approx(0.193)  # decode of both: 0.012
    assert b.finish_s == pytest.approx(0.193)


def test_decode_run_is_cut_by_a_new_request() -> None:
    """A request arriving mid-run joins at the next step boundary, not at the end of the run."""
    inst = EngineInstance(engine(), "i0", check_invariants=True)
    a = SimRequest(0, "a", 0.0, 10, 200)
    inst.add_request(a, 0.0)
    inst.advance(0.02)  # prefill ends at 0.02; a decode run of 199 steps of 11 ms starts
    assert inst.next_event_time() == pytest.approx(0.02 + 199 * 0.011)
    b = SimRequest(1, "b", 0.1, 10, 1)
    assert inst.advance(0.1) == []
    inst.add_request(b, 0.1)
    # 7 steps end by 0.097, the 8th is in flight at 0.1 and ends at 0.108
    assert inst.next_event_time() == pytest.approx(0.02 + 8 * 0.011)
    _drain(inst)
    assert b.first_token_s == pytest.approx(0.108 + 0.02)
    assert a.finish_s > b.finish_s


def test_kv_view_counts_decode_progress_within_a_run() -> None:
    inst = EngineInstance(engine(), "i0")
    a = SimRequest(0, "a", 0.0, 10, 100)
    inst.add_request(a, 0.0)
    inst.advance(0.02)
    assert inst.refresh_view(0.02).kv_used_tokens == 11
    assert inst.refresh_view(0.02 + 5 * 0.011 + 1e-9).kv_used_tokens == 16
    assert inst.view.running == 1 and inst.view.waiting == 0


def test_preemption_by_recompute_happens_and_recovers() -> None:
    """8 sequences that together outgrow a 1024-token cache: the newest are preempted, all still finish."""
    inst = EngineInstance(engine(kv_tokens=1024, cost=WITH_CTX), "i0", check_invariants=True)
    reqs = [SimRequest(i, f"r{i}", i * 0.001, 60, 120) for i in range(8)]
    for r in reqs:
        inst.advance(r.arrival)
        inst.add_request(r, r.arrival)
    events = _drain(inst)
    finished = [e.request for e in events if e.kind is EngineEventKind.FINISHED]
    assert sorted(r.idx for r in finished) == list(range(8))
    assert sum(r.preemptions for r in reqs) > 0
    assert reqs[0].preemptions == 0  # the oldest is never the victim
    assert all(r.generated == r.output for r in reqs)
    assert inst.used_blocks == 0 and inst.idle()


@pytest.mark.parametrize("chunked", [False, True])
def test_kv_never_negative_nor_above_capacity(chunked: bool) -> None:
    """Random load on a small cache, with the invariant recount after every step."""
    import random

    rng = random.Random(3)
    inst = EngineInstance(engine(chunked=chunked, kv_tokens=2048, max_batched=512, cost=WITH_CTX), "i0",
                          check_invariants=True)
    t = 0.0
    reqs = []
    for i in range(150):
        t += rng.expovariate(20.0)
        inst.advance(t)
        r = SimRequest(i, f"r{i}", t, rng.randint(1, 400), rng.randint(1, 100))
        inst.add_request(r, t)
        reqs.append(r)
        assert 0 <= inst.used_blocks <= inst.total_blocks
        assert 0 <= inst.refresh_view(t).kv_used_tokens <= 2048
    _drain(inst)
    assert all(r.finish_s >= r.first_token_s >= r.arrival for r in reqs)
    assert inst.used_blocks == 0


def test_invariant_check_catches_drift() -> None:
    from fleet.engine_checks import KVAccountingError, check_invariants

    inst = EngineInstance(engine(), "i0")
    inst.add_request(SimRequest(0, "a", 0.0, 40, 50), 0.0)
    inst.advance(0.1)
    check_invariants(inst)
    inst.used_blocks += 1
    with pytest.raises(KVAccountingError):
        check_invariants(inst)
