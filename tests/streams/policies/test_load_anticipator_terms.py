"""Load anticipator, term by term: exact projections on a 2 s grid away from the origin, the horizon cuts of
each query, the cache, extensions and forgetting, rate learning and its rebuild threshold.

The fixture: origin 1000.5 s, 10 tokens/s per sequence, 2 s buckets, 20 s horizon (10 grid points).
``x`` (10 prompt tokens, 50 predicted) starts at 0 s and ends at 5 s (relative); ``y`` (40, 200) starts at
1 s and ends at 21 s. At now = 1002.5 (relative 2 s, bucket 1) the grid is 1004.5 + 2k and the loads are
[120, 90, 110, 130, 150, 170, 190, 210, 230, 0]: x + y at 4 s, then y alone (40 + 10 (t - 1)), then nothing.
"""

from __future__ import annotations

import pytest

from streams.policies.load_anticipator import AnticipatorConfig, LoadAnticipator

T0 = 1000.5
NOW = T0 + 2.0
LOADS = [120.0, 90.0, 110.0, 130.0, 150.0, 170.0, 190.0, 210.0, 230.0, 0.0]


def make(**kw: float) -> LoadAnticipator:
    cfg = {"horizon_s": 20.0, "bucket_s": 2.0, "decode_tokens_per_s": 10.0, **kw}
    return LoadAnticipator(AnticipatorConfig(**cfg))


def fixture(**kw: float) -> LoadAnticipator:
    a = make(**kw)
    a.add("x", 10, 50, now=T0)
    a.add("y", 40, 200, now=T0 + 1.0)
    return a


def test_profile_is_exact_on_a_two_second_grid_away_from_the_origin() -> None:
    a = fixture()
    t0, loads = a.profile(NOW)
    assert t0 == pytest.approx(T0 + 4.0)
    assert loads == pytest.approx(LOADS)
    assert a.current_load(NOW) == pytest.approx(30 + 50)  # x: 10 + 20, y: 40 + 10
    assert a.in_flight == 2


def test_profile_one_bucket_later_moves_the_grid() -> None:
    a = fixture()
    t0, loads = a.profile(T0 + 4.5)  # relative 4.5 s: bucket 2, x ends in it
    assert t0 == pytest.approx(T0 + 6.0)
    assert loads[:3] == pytest.approx([90.0, 110.0, 130.0])


def test_a_cached_profile_moves_with_the_bucket_of_now() -> None:
    a = fixture()
    a.profile(NOW)
    t0, loads = a.profile(T0 + 4.0)  # bucket 2, nothing changed in between (x ends at 5 s: no extension)
    assert t0 == pytest.approx(T0 + 6.0)
    assert loads[:2] == pytest.approx([90.0, 110.0])


def test_max_load_reads_the_horizon_it_is_given() -> None:
    a = fixture()
    assert a.max_load(NOW, horizon_s=0.0) == pytest.approx(80.0)  # the current load only
    assert a.max_load(NOW, horizon_s=4.0) == pytest.approx(120.0)  # grid points 1004.5, 1006.5
    assert a.max_load(NOW, horizon_s=9.0) == pytest.approx(150.0)  # up to 1012.5
    assert a.max_load(NOW, horizon_s=13.0) == pytest.approx(190.0)  # up to 1016.5
    assert a.max_load(NOW) == pytest.approx(230.0)  # the configured 20 s


def test_expected_usage_averages_the_current_load_and_the_grid() -> None:
    a = fixture()
    assert a.expected_usage(NOW, horizon_s=9.0) == pytest.approx((80 + 120 + 90 + 110 + 130) / 5)
    assert a.expected_usage(NOW, horizon_s=0.0) == pytest.approx((80 + 120) / 2)
    assert a.expected_usage(NOW) == pytest.approx((80 + sum(LOADS[:9])) / 10)


def test_peak_with_covers_the_new_request_lifetime_only() -> None:
    a = fixture()
    # 60 tokens at 10/s: 6 s of life, grid points 2, 4, 6 s ahead; it holds 5 + 10 (t - now)
    assert a.peak_with(5, 60, NOW) == pytest.approx(110 + 5 + 60)
    assert a.peak_with(5, 30, NOW) == pytest.approx(120 + 5 + 20)  # 3 s: only the first point
    assert a.peak_with(5, 200, NOW) == pytest.approx(230 + 5 + 180)  # the whole horizon
    assert a.peak_with(5, 0, NOW) == pytest.approx(80 + 5)  # one token: ends before the first point
    assert a.peak_with(5, 10_000, NOW) == pytest.approx(230 + 5 + 180)  # life capped at the horizon


def test_peak_with_on_an_empty_anticipator_is_the_request_alone() -> None:
    a = make()
    assert a.peak_with(100, 40, 500.0) == pytest.approx(100 + 40)  # 4 s: points at 2 and 4 s ahead
    assert a.max_load(500.0) == 0.0 and a.expected_usage(500.0) == 0.0


def test_a_new_request_in_the_same_bucket_refreshes_the_cached_profile() -> None:
    a = fixture()
    a.profile(NOW)
    a.add("z", 100, 100, now=NOW)  # 2 s .. 12 s: +100 + 10 (t - 2) up to the point at 12 s
    _, loads = a.profile(NOW + 0.5)
    assert loads[:6] == pytest.approx([240.0, 230.0, 270.0, 310.0, 350.0, 170.0])
    a.remove("z", NOW + 0.5)
    _, loads = a.profile(NOW + 0.5)
    assert loads == pytest.approx(LOADS)


def test_re_adding_a_request_replaces_it() -> None:
    a = fixture()
    a.add("x", 10, 200, now=T0)  # x now runs 20 s too
    assert a.in_flight == 2
    _, loads = a.profile(NOW)
    assert loads[1] == pytest.approx(90.0 + 70.0)  # x at 6 s: 10 + 60
    a.advance(T0 + 6.0)  # the stale heap entry of the first x (end 5 s) must not extend it
    assert a.extensions == 0 and a.in_flight == 2


def test_outliving_the_prediction_extends_by_growth_or_the_minimum() -> None:
    a = fixture()
    a.advance(T0 + 6.0)  # x generated 60 > 50: max(1.5 x 50, 60 + 16) = 76 tokens, ends at 7.6 s
    assert a.extensions == 1 and a.in_flight == 2
    assert a.current_load(T0 + 6.0) == pytest.approx(70 + 90)
    _, loads = a.profile(T0 + 6.0)  # grid 8, 10, ... (relative): x gone at 8 s
    assert loads[0] == pytest.approx(110.0)
    b = fixture(growth=2.0)
    b.advance(T0 + 6.0)  # max(2 x 50, 76) = 100 tokens: ends at 10 s
    _, loads = b.profile(T0 + 6.0)
    assert loads[0] == pytest.approx(110.0 + 90.0)  # x at 8 s: 10 + 80
    assert loads[1] == pytest.approx(110.0 + 130.0)  # x ends exactly at the point at 10 s: still counted
    assert loads[2] == pytest.approx(150.0)  # and gone at 12 s


def test_an_extension_at_the_exact_expected_end() -> None:
    a = fixture()
    a.advance(T0 + 5.0)  # x's end is exactly now: extended (<=), 50 generated -> max(75, 66) = 75
    assert a.extensions == 1
    _, loads = a.profile(T0 + 5.0)  # grid 6, 8 s: x ends at 7.5 s
    assert loads[0] == pytest.approx(70.0 + 90.0)
    assert loads[1] == pytest.approx(110.0)


def test_a_request_past_the_model_length_is_forgotten_for_good() -> None:
    a = fixture(max_output_tokens=100.0)
    a.advance(T0 + 6.0)  # x: 60 generated -> extended to min(76, 100)
    assert a.extensions == 1
    a.advance(T0 + 10.0)  # x: 100 generated >= 100: forgotten (its completion was lost)
    assert a.in_flight == 1 and a.extensions == 1
    assert a.current_load(T0 + 10.0) == pytest.approx(40 + 90)
    assert a.complete("x", 100, 10.0, 0.5, T0 + 11.0) is False  # a late completion finds nothing
    assert a.in_flight == 1
    a.add("w", 5, 5, now=T0 + 11.0)
    assert a.in_flight == 2


def test_extensions_are_capped_at_the_model_length() -> None:
    a = fixture(max_output_tokens=70.0)
    a.advance(T0 + 6.0)  # 60 generated < 70: extended to min(76, 70) = 70, ends at 7 s
    _, loads = a.profile(T0 + 6.0)
    assert loads[0] == pytest.approx(110.0)  # x gone before 8 s
    assert a.current_load(T0 + 6.5) == pytest.approx(75 + 95)


def test_completion_learns_the_rate_and_rebuilds_the_ends() -> None:
    a = fixture(rate_ewma=0.5)
    assert a.complete("x", 21, 5.0, 1.0, now=T0 + 4.0) is True  # 20 tokens in 4 s: 5/s
    assert a.rate == pytest.approx(7.5)  # 0.5 x 10 + 0.5 x 5
    # drift 25% > 15%: y's end is recomputed: 1 + 200 / 7.5 = 27.7 s, past the horizon
    _, loads = a.profile(T0 + 4.0)  # grid 6, 8, ... 24 s
    assert loads[0] == pytest.approx(40 + 7.5 * 5)
    assert loads[-1] == pytest.approx(40 + 7.5 * 23)


def test_small_rate_drift_keeps_the_ends() -> None:
    a = fixture(rate_ewma=1.0)
    a.complete("x", 18, 3.0, 1.0, now=T0 + 4.0)  # 17 / 2 = 8.5 tokens/s: exactly 15% drift, no rebuild
    assert a.rate == pytest.approx(8.5)
    _, loads = a.profile(T0 + 4.0)
    assert loads[7] == pytest.approx(40 + 8.5 * 19)  # the point at 20 s
    assert loads[8] == 0.0  # y still ends at 21 s (bucket 10)
    b = fixture(rate_ewma=1.0)
    b.complete("x", 17, 3.0, 1.0, now=T0 + 4.0)  # 8.0 tokens/s: 20% drift, y ends at 26 s
    _, loads = b.profile(T0 + 4.0)
    assert loads[8] == pytest.approx(40 + 8.0 * 21)


@pytest.mark.parametrize("output, e2e, ttft", [(1, 5.0, 1.0), (10, 1.0, 1.0), (10, 1.0, 2.0), (0, 3.0, 1.0)])
def test_completions_without_a_decode_phase_teach_nothing(output: int, e2e: float, ttft: float) -> None:
    a = fixture(rate_ewma=1.0)
    a.complete("x", output, e2e, ttft, now=T0 + 4.0)
    assert a.rate == 10.0
    assert a.in_flight == 1


def test_two_tokens_in_a_short_decode_teach_the_rate() -> None:
    a = fixture(rate_ewma=1.0)
    a.complete("x", 2, 1.2, 1.0, now=T0 + 4.0)  # 1 token in 0.2 s
    assert a.rate == pytest.approx(5.0)


def test_removing_rolls_back_exactly_and_unknown_ids_are_refused() -> None:
    a = fixture()
    assert a.remove("nope", NOW) is False
    assert a.remove("x", NOW) is True
    assert a.remove("x", NOW) is False
    assert a.current_load(NOW) == pytest.approx(50.0)
    assert a.in_flight == 1
    assert a.remove("y", NOW) is True
    assert a.current_load(NOW) == 0.0 and a.max_load(NOW) == 0.0
    a.add("later", 10, 10, now=NOW + 100.0)  # a fresh start after the fleet emptied
    assert a.current_load(NOW + 100.5) == pytest.approx(15.0)


def test_zero_predicted_length_still_holds_one_token() -> None:
    a = make(bucket_s=0.05)
    a.add("r", 10, 0, now=T0)  # one token at 10/s: ends at 0.1 s
    _, loads = a.profile(T0)
    assert loads[:3] == pytest.approx([10.5, 11.0, 0.0])  # points at 0.05, 0.1 (its end), 0.15 s


def test_config_is_validated() -> None:
    for bad in ({"horizon_s": 0.0}, {"bucket_s": 0.0}, {"decode_tokens_per_s": 0.0}, {"rate_ewma": 0.0},
                {"rate_ewma": 1.5}, {"growth": 1.0}):
        with pytest.raises(ValueError):
            AnticipatorConfig(**bad)
    AnticipatorConfig(rate_ewma=1.0, growth=1.01)
    AnticipatorConfig(horizon_s=0.5, bucket_s=0.5, decode_tokens_per_s=0.5, rate_ewma=0.01)


def test_defaults() -> None:
    c = AnticipatorConfig()
    assert (c.horizon_s, c.bucket_s, c.decode_tokens_per_s, c.rate_ewma, c.growth, c.min_extend_tokens,
            c.rebuild_drift, c.max_output_tokens) == (30.0, 1.0, 30.0, 0.05, 1.5, 16.0, 0.15, 4096.0)
    assert LoadAnticipator().config == c
