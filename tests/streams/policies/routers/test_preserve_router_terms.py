"""PreServe router, term by term: the prefill backlog (queued prompts and the leaky bucket of routed ones),
the anticipated peak, the overflow beyond ``kv_fill``, one deciding at a time, then all three with exact scores.

Times start far from the origin (t = 1000 s) and the anticipators use 2 s buckets, so grid arithmetic is
exercised. Decode rate 10 tokens/s and a prefill rate of 1000 tokens/s keep the numbers by hand.
"""

from __future__ import annotations

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.routers.preserve_router import PreServeRouter

T = 1000.0


def inst(iid: str, cap: int = 100_000, **kw: int) -> InstanceView:
    return InstanceView(instance_id=iid, state=InstanceState.READY, kv_capacity_tokens=cap, **kw)


def fleet(*instances: InstanceView) -> FleetView:
    return FleetView(service="svc", instances=list(instances), min_instances=1, max_instances=8)


def req(rid: str, prompt: int, p90: float, predicted: float | None = None, now: float = T) -> RequestInfo:
    return RequestInfo(request_id=rid, service="svc", arrival=now, prompt_tokens=prompt,
                       predicted_tokens=p90 / 2 if predicted is None else predicted, predicted_p90_tokens=p90)


def router(**kw: float) -> PreServeRouter:
    args = {"decode_tokens_per_s": 10.0, "bucket_s": 2.0, "prefill_tokens_per_s": 1000.0, **kw}
    return PreServeRouter(**args)  # type: ignore[arg-type]


# ----------------------------------------------------------------- one term at a time
def test_queued_prompts_decide_alone() -> None:
    """A queue of 1000 prompt tokens against 1500 KV tokens in use: the prefill weight 2 makes the queue
    costlier; with weight 0 the KV use decides the other way."""
    a = inst("a", waiting_prompt_tokens=1000)
    b = inst("b", kv_used_tokens=1500)
    r = router()
    # one token of life: the measured peak (KV + queue + prompt) is the peak; a: 2 x 1050 + 1050, b: 2 x 50 + 1550
    choice = r.choose(req("n", 50, 1, predicted=1), fleet(a, b), now=T)
    assert choice.instance_id == "b" and choice.score == pytest.approx(2 * 50 + 1550)
    assert r.score(req("n", 50, 1, predicted=1), a, T) == pytest.approx(2 * 1050 + 1050)
    flat = router(prefill_weight=0.0)
    assert flat.choose(req("n", 50, 1, predicted=1), fleet(a, b), now=T).instance_id == "a"


def done(rid: str, iid: str, at: float) -> CompletionInfo:
    """A one-token completion: the anticipator forgets the request and learns nothing."""
    return CompletionInfo(rid, iid, arrival=at, finish=at, prompt_tokens=0, output_tokens=1, ttft_s=0.0)


def test_routed_prompts_drain_at_the_prefill_rate() -> None:
    """The leaky bucket: 4000 prompt tokens routed to ``a`` at T, drained at 1000/s, no queue reported (the
    requests complete at once, so only the bucket remembers them)."""
    r = router()
    r.on_routed(req("big", 4000, 1, predicted=1), "a", now=T)
    r.on_completed(done("big", "a", T), now=T)
    assert r.prefill_backlog("a", T) == pytest.approx(4000)
    assert r.prefill_backlog("a", T + 2.5) == pytest.approx(1500)
    assert r.prefill_backlog("a", T + 9.0) == 0.0
    assert r.prefill_backlog("unknown", T + 9.0) == 0.0
    r.on_routed(req("more", 1000, 1, predicted=1), "a", now=T + 3.0)  # 1000 left + 1000 new
    r.on_completed(done("more", "a", T + 3.0), now=T + 3.0)
    assert r.prefill_backlog("a", T + 3.0) == pytest.approx(2000)
    assert r.prefill_backlog("a", T + 4.0) == pytest.approx(1000)
    a, b = inst("a"), inst("b", kv_used_tokens=1500)
    new = req("n", 50, 1, predicted=1)
    assert r.score(new, a, T + 3.5) == pytest.approx(2 * (50 + 1500) + 50)
    assert r.choose(new, fleet(a, b), now=T + 3.5).instance_id == "b"  # 1500 still to prefill at a
    choice = r.choose(new, fleet(a, b), now=T + 5.0)  # a has drained
    assert choice.instance_id == "a"
    assert choice.score == pytest.approx(2 * 50 + 50)


def test_the_larger_of_queue_and_bucket_counts() -> None:
    r = router()
    r.on_routed(req("big", 3000, 1, predicted=1), "a", now=T)
    r.on_completed(done("big", "a", T), now=T)
    q = inst("a", waiting_prompt_tokens=1000)
    # bucket 3000 > queue 1000: 2 (10 + 3000) + measured (1000 + 10)
    assert r.score(req("n", 10, 1, predicted=1), q, T) == pytest.approx(2 * 3010 + 1010)
    # at T + 2.5 the bucket holds 500 < queue 1000
    assert r.score(req("n", 10, 1, predicted=1), q, T + 2.5) == pytest.approx(2 * 1010 + 1010)


def test_anticipated_peak_decides_alone() -> None:
    """``a`` holds a request that will grow for 20 s; ``b`` holds more KV now but nothing that grows.
    The backlog is drained and equal; only the anticipated peak separates them."""
    r = router()
    r.on_routed(req("long", 100, 200), "a", now=T)  # 100 + 10 (t - T), until T + 20
    a = inst("a", running=1, kv_used_tokens=140)  # as measured at T + 4
    b = inst("b", running=3, kv_used_tokens=200)
    new = req("n", 50, 40, now=T + 4)  # 4 s of life: grid points T + 6, T + 8
    # a: max(peak 180 + 50 + 40, measured 190) = 270; b: max(50 + 40, 250) = 250
    assert r.score(new, a, T + 4) == pytest.approx(2 * 50 + 270)
    assert r.score(new, b, T + 4) == pytest.approx(2 * 50 + 250)
    choice = r.choose(new, fleet(a, b), now=T + 4)
    assert choice.instance_id == "b" and choice.score == pytest.approx(350)


def test_anticipated_peak_of_a_new_instance_uses_the_fleet_rate() -> None:
    r = router()
    r.on_routed(req("a0", 100, 20), "a", now=T)
    r.on_completed(CompletionInfo("a0", "a", arrival=T, finish=T + 5.0, prompt_tokens=100, output_tokens=21,
                                  ttft_s=1.0), now=T + 5.0)  # 20 tokens in 4 s: the EWMA moves 10 -> 9.75
    assert r.anticipators["a"].rate == pytest.approx(0.95 * 10 + 0.05 * 5)
    r.anticipator("b")
    assert r.anticipators["b"].rate == pytest.approx(9.75)
    r.on_routed(req("c0", 100, 20), "c", now=T)
    r.anticipator("c")
    assert r.anticipators["c"].rate == pytest.approx(9.75)  # mean of a and b


def test_overflow_decides_alone() -> None:
    """``a`` would sit at 950 of 1000 KV tokens (over kv_fill 0.9 by 50); ``b`` is at 800 with a queue."""
    a = inst("a", cap=1000, kv_used_tokens=900)
    b = inst("b", cap=1000, kv_used_tokens=600, waiting_prompt_tokens=150)
    new = req("n", 50, 1, predicted=1)
    plain = router()
    assert plain.choose(new, fleet(a, b), now=T).instance_id == "a"  # 2 x 50 + 950 < 2 x 200 + 800
    r = router(overflow_weight=10.0)
    assert r.score(new, a, T) == pytest.approx(2 * 50 + 950 + 10 * 50)
    choice = r.choose(new, fleet(a, b), now=T)
    assert choice.instance_id == "b" and choice.score == pytest.approx(2 * 200 + 800)
    loose = router(overflow_weight=10.0, kv_fill=1.0)
    assert loose.choose(new, fleet(a, b), now=T).instance_id == "a"


def test_all_terms_together() -> None:
    r = router(overflow_weight=2.0, kv_fill=0.5)
    r.on_routed(req("long", 100, 200), "a", now=T)  # anticipated: 100 + 10 (t - T) until T + 20
    r.on_routed(req("p", 2000, 1, predicted=1), "a", now=T + 3)  # prefill bucket: 2000 at T + 3
    r.on_completed(done("p", "a", T + 3), now=T + 3)
    a = inst("a", cap=400, running=1, kv_used_tokens=100, waiting_prompt_tokens=100)
    new = req("n", 50, 40, now=T + 4)
    # backlog: 50 + max(queue 100, bucket 1000) = 1050; peak: long at T + 8 (180) + 50 + 40 = 270 > 250
    # measured; overflow: 270 - 0.5 x 400 = 70
    assert r.score(new, a, T + 4) == pytest.approx(2 * 1050 + 270 + 2 * 70)
    b = inst("b", cap=400, kv_used_tokens=320)  # measured 370, overflow 170: 100 + 370 + 340 = 810
    choice = r.choose(new, fleet(a, b), now=T + 4)
    assert choice.instance_id == "b" and choice.score == pytest.approx(810)


def test_p90_is_preferred_and_the_mean_is_the_fallback() -> None:
    r = router()
    r.on_routed(req("p90", 0, 60, predicted=20), "a", now=T)
    r.on_routed(req("mean", 0, 0, predicted=60), "b", now=T)
    assert r.anticipators["a"].max_load(T) == pytest.approx(60)
    assert r.anticipators["b"].max_load(T) == pytest.approx(60)
    assert r.score(req("n", 10, 0, predicted=60), inst("x"), T) == r.score(req("n", 10, 60, predicted=5),
                                                                          inst("y"), T)


# ----------------------------------------------------------------- ties and choice
def test_ties_go_to_fewer_requests_then_to_the_id() -> None:
    r = router()
    new = req("n", 10, 1, predicted=1)
    busy, idle = inst("a", running=1, waiting=2), inst("b", running=2)
    assert r.choose(new, fleet(busy, idle), now=T).instance_id == "b"
    assert r.choose(new, fleet(inst("z"), inst("m")), now=T).instance_id == "m"
    assert r.choose(new, fleet(inst("m"), inst("z")), now=T).instance_id == "m"


def test_the_reason_and_score_are_reported() -> None:
    choice = router().choose(req("n", 10, 1, predicted=1), fleet(inst("a")), now=T)
    assert choice.reason == "min prefill backlog + anticipated token usage"
    assert choice.score == pytest.approx(2 * 10 + 10)


# ----------------------------------------------------------------- hooks
def test_completion_goes_to_the_instance_it_was_routed_to() -> None:
    r = router()
    r.on_routed(req("r1", 100, 40), "a", now=T)
    r.on_completed(CompletionInfo("r1", "b", arrival=T, finish=T + 3, prompt_tokens=100, output_tokens=5,
                                  ttft_s=0.5), now=T + 3)
    assert r.anticipators["a"].in_flight == 0
    assert r.anticipators["a"].rate == pytest.approx(0.95 * 10 + 0.05 * 4 / 2.5)
    r.on_routed(req("r2", 100, 40), "a", now=T + 3)
    # not routed through this router: the completion's own instance
    r.on_completed(CompletionInfo("r2", "a", arrival=T, finish=T + 4, prompt_tokens=100, output_tokens=5,
                                  ttft_s=0.5), now=T + 4)
    assert r.anticipators["a"].in_flight == 0
    r.on_completed(CompletionInfo("r3", "ghost", arrival=T, finish=T + 4, prompt_tokens=1, output_tokens=5,
                                  ttft_s=0.5), now=T + 4)  # an unknown instance is ignored
    assert "ghost" not in r.anticipators


def test_a_routed_id_is_forgotten_after_its_completion() -> None:
    r = router()
    r.on_routed(req("r1", 100, 40), "a", now=T)
    done = CompletionInfo("r1", "a", arrival=T, finish=T + 3, prompt_tokens=100, output_tokens=5, ttft_s=0.5)
    r.on_completed(done, now=T + 3)
    r.on_routed(req("r1", 100, 40), "b", now=T + 3)  # the id reused on another instance
    r.on_completed(CompletionInfo("r1", "b", arrival=T + 3, finish=T + 6, prompt_tokens=100, output_tokens=5,
                                  ttft_s=0.5), now=T + 6)
    assert r.anticipators["b"].in_flight == 0


def test_removal_forgets_anticipator_and_backlog() -> None:
    r = router()
    r.on_routed(req("r1", 5000, 40), "a", now=T)
    r.on_instance_removed("a", now=T + 1)
    assert "a" not in r.anticipators and r.prefill_backlog("a", T + 1) == 0.0
    r.on_instance_removed("never-seen", now=T + 1)


# ----------------------------------------------------------------- parameters
def test_defaults_and_the_prefill_rate_of_the_engine() -> None:
    r = PreServeRouter()
    assert (r.prefill_weight, r.overflow_weight, r.kv_fill) == (2.0, 0.0, 0.9)
    c = r.anticipator_config
    assert (c.horizon_s, c.bucket_s, c.decode_tokens_per_s) == (30.0, 1.0, 30.0)
    e = get_preset("llama2-7b-h100")
    chunk = e.max_batched_tokens
    assert r.prefill_rate == chunk / e.cost_model.step_time(chunk, 0, 0, float(chunk) * chunk / 2)
    assert PreServeRouter(engine=None).prefill_rate == 40_000.0
    assert PreServeRouter(prefill_tokens_per_s=1234.0).prefill_rate == 1234.0
    # a 100 s request on the default router: its life is capped at the 30 s horizon, 30 tokens/s
    assert r.score(req("n", 100, 3000), inst("a"), T) == pytest.approx(2 * 100 + 100 + 30 * 30)


@pytest.mark.parametrize("kw", [{"prefill_weight": -0.1}, {"overflow_weight": -1.0}, {"kv_fill": 0.0},
                                {"kv_fill": 1.01}])
def test_bad_parameters_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PreServeRouter(**kw)  # type: ignore[arg-type]


def test_edge_parameters_are_accepted() -> None:
    r = PreServeRouter(prefill_weight=0.0, overflow_weight=0.0, kv_fill=1.0)
    assert r.kv_fill == 1.0
