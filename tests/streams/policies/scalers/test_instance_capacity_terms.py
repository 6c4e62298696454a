"""Instance capacity on a step-time model with binary-exact coefficients: the TPOT-bound batch, the KV bound
and the sequence cap each deciding alone, the per-token seconds, the rounding of the cached inputs."""

from __future__ import annotations

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.scalers.instance_capacity import InstanceCapacity, _round, capacity_at


class LinearStep:
    """step = 1/64 + n/1024 + prefill/65536 + context/2^24 s; records its calls (hashed by identity)."""

    def __init__(self, per_seq: float = 1 / 1024, per_ctx: float = 0.0) -> None:
        self.per_seq, self.per_ctx = per_seq, per_ctx
        self.calls: list[tuple[int, int, int, float | None]] = []

    def step_time(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                  prefill_pairs: float | None = None) -> float:
        self.calls.append((prefill_tokens, decode_seqs, context_tokens, prefill_pairs))
        return 1 / 64 + decode_seqs * self.per_seq + prefill_tokens / 65536 + context_tokens * self.per_ctx


def test_tpot_bounds_the_batch() -> None:
    cost = LinearStep()
    cap = capacity_at(cost, 1_000_000, 256, 100, 100, 0.0625)  # n <= (1/16 - 1/64) x 1024 = 48
    step = 1 / 64 + 48 / 1024
    assert cap == InstanceCapacity(s_per_prompt_token=1 / 65536, s_per_gen_token=step / 48, batch=48, step_s=step)
    assert cost.calls[-2:] == [(0, 48, 48 * 150, None), (100, 48, 48 * 150, 100.0 * 100)]
    assert cap.prompt_tokens_per_s == 65536 and cap.gen_tokens_per_s == pytest.approx(48 / step)
    assert cap.utilisation(1000.0, 10.0) == pytest.approx(1000 / 65536 + 10 * step / 48)


def test_the_kv_share_bounds_the_batch() -> None:
    # ctx = 1000 + 200 / 2 = 1100; int(0.9 x 20000 / 1100) = 16 sequences
    assert capacity_at(LinearStep(), 20_000, 256, 1000, 200, 0.0625).batch == 16
    assert capacity_at(LinearStep(), 20_000, 256, 1000, 200, 0.0625, kv_fill=0.5).batch == 9
    assert capacity_at(LinearStep(), 1_000, 256, 1000, 200, 0.0625).batch == 1  # not even one fits: one
    assert capacity_at(LinearStep(), 100_000, 256, 1000, 200, 1.0, kv_fill=0.55).batch == 50  # 3 digits of kv_fill


def test_max_num_seqs_bounds_the_batch() -> None:
    assert capacity_at(LinearStep(), 1_000_000, 5, 100, 100, 0.0625).batch == 5


def test_a_step_over_the_target_even_alone_keeps_one_sequence() -> None:
    cap = capacity_at(LinearStep(), 1_000_000, 256, 100, 100, 0.01)
    assert cap.batch == 1 and cap.step_s == pytest.approx(1 / 64 + 1 / 1024)


def test_the_first_step_over_the_target_ends_the_search() -> None:
    """A step time that dips again after its first crossing: the batch stays below the crossing."""

    class Dip(LinearStep):
        def step_time(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                      prefill_pairs: float | None = None) -> float:
            base = super().step_time(prefill_tokens, decode_seqs, context_tokens, prefill_pairs)
            return base if decode_seqs != 10 else 1.0

    assert capacity_at(Dip(), 1_000_000, 256, 100, 100, 0.0625).batch == 9


def test_context_enters_the_decode_step() -> None:
    cost = LinearStep(per_ctx=1 / 2**20)
    cap = capacity_at(cost, 1_000_000, 256, 1000, 1000, 0.0625)  # 1/64 + n/1024 + 1500 n / 2^20 <= 1/16
    assert cap.batch == int((1 / 16 - 1 / 64) / (1 / 1024 + 1500 / 2**20))


def test_inputs_are_rounded_to_two_digits_for_the_cache() -> None:
    assert [_round(x) for x in (0.3, 5, 99.4, 155, 1234, 98765.0)] == [1, 5, 99, 160, 1200, 99000]
    cost = LinearStep()
    a = capacity_at(cost, 1_000_000, 256, 1234.0, 96.0, 0.06251)
    b = capacity_at(cost, 1_000_000, 256, 1200, 96, 0.0625)
    assert a is b
    assert cost.calls[-1][0] == 1200


def test_engine_capacity_respects_tpot_and_kv() -> None:
    e = get_preset("llama2-7b-h100")
    cap = capacity_at(e.cost_model, e.kv_capacity_tokens, e.max_num_seqs, 1000, 200, 0.05)
    assert cap.batch == int(0.9 * e.kv_capacity_tokens / 1100) == 95  # the KV share binds, not the TPOT
    assert cap.step_s == e.cost_model.step_time(0, 95, 95 * 1100) <= 0.05
    assert cap.s_per_gen_token == pytest.approx(cap.step_s / cap.batch)
