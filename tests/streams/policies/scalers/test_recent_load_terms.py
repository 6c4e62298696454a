"""RecentLoad, term by term: the window edges of arrivals, completions, SLO marks and pending predictions
(exact boundary events), the span seen so far, rates with and without predictions, calibration, the mix,
and the binomial tail at its edges. Times start at T = 7000 s."""

from __future__ import annotations

import math

import pytest

from streams.policies.scalers.recent_load import RecentLoad, binomial_tail

T = 7000.0


def test_arrivals_leave_the_window_strictly_after_span() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.arrival(T, "a", 100, 10.0)
    r.arrival(T + 5.0, "b", 300, 30.0)
    r.age(T + 20.0)  # the arrival at T is exactly span old: kept
    assert r.rates(T + 20.0) == pytest.approx((400 / 20.0, 40 / 20.0))
    r.age(T + 20.5)
    assert r.rates(T + 20.5) == pytest.approx((300 / 20.0, 30 / 20.0))


def test_the_span_grows_until_the_window_is_full() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.arrival(T, "a", 100, 10.0)
    assert r.rates(T) == pytest.approx((100 / 1.0, 10 / 1.0))  # the floor
    assert r.rates(T, floor_s=4.0) == pytest.approx((25.0, 2.5))
    assert r.rates(T + 8.0) == pytest.approx((100 / 8.0, 10 / 8.0))
    assert r.rates(T + 30.0) == pytest.approx((100 / 20.0, 10 / 20.0))  # not aged: still counted, full span
    empty = RecentLoad(span_s=20.0, mix_span_s=50.0)
    assert empty.rates(T) == (0.0, 0.0)


def test_the_first_completion_also_starts_the_clock() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.completion(T, "c", 100, 40, None)
    r.arrival(T + 10.0, "a", 100, 0.0)
    assert r.rates(T + 10.0) == pytest.approx((100 / 10.0, 40 / 10.0))


def test_without_predictions_generated_tokens_come_from_completions_over_the_mix_span() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.arrival(T, "a", 100, 0.0)
    r.completion(T + 1.0, "a", 100, 60, None)
    r.completion(T + 2.0, "b", 100, 40, None)
    assert r.rates(T + 40.0) == pytest.approx((100 / 20.0, 100 / 40.0))
    assert r.rates(T + 80.0) == pytest.approx((100 / 20.0, 100 / 50.0))
    assert r.calibration() == 1.0


def test_calibration_uses_only_completions_that_had_a_prediction() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.arrival(T, "p", 100, 50.0)
    r.arrival(T, "q", 100, 0.0)  # no prediction: not pending
    r.completion(T + 1.0, "p", 100, 150, None)
    r.completion(T + 1.0, "q", 100, 1000, None)
    r.completion(T + 1.0, "unknown", 100, 7, None)
    assert r.calibration() == pytest.approx(150 / 50)
    assert r.rates(T + 10.0) == pytest.approx((200 / 10.0, 50 * 3.0 / 10.0))
    assert r.mix() == pytest.approx((100.0, (150 + 1000 + 7) / 3))


def test_a_prediction_under_one_token_still_counts() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.arrival(T, "p", 100, 0.5)
    r.completion(T + 1.0, "p", 100, 2, None)
    assert r.calibration() == pytest.approx(4.0)


def test_a_prediction_is_used_once() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.arrival(T, "p", 100, 50.0)
    r.completion(T + 1.0, "p", 100, 100, None)
    r.completion(T + 2.0, "p", 100, 100, None)  # a duplicate completion has no prediction left
    assert r.calibration() == pytest.approx(100 / 50)


def test_completions_age_on_the_mix_span_but_the_last_one_stays() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0, prior_prompt=11.0, prior_output=22.0)
    assert r.mix() == (11.0, 22.0)
    r.arrival(T, "p", 100, 50.0)
    r.completion(T, "p", 300, 100, 1)
    r.completion(T + 10.0, "q", 100, 20, 0)
    r.age(T + 50.0)  # exactly mix span old: kept
    assert r.mix() == pytest.approx((200.0, 60.0)) and r.judged() == 2 and r.slo_misses == 1
    r.age(T + 50.5)
    assert r.mix() == pytest.approx((100.0, 20.0)) and r.judged() == 1 and r.slo_misses == 0
    assert r.calibration() == 1.0  # the predicted one left the window
    r.age(T + 500.0)  # the last completion stays for the mix, its SLO mark does not
    assert r.mix() == pytest.approx((100.0, 20.0)) and r.judged() == 0 and r.miss_share() == 0.0


def test_slo_marks_count_only_judged_completions() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0)
    r.completion(T, "a", 1, 1, 1)
    r.completion(T, "b", 1, 1, 0)
    r.completion(T, "c", 1, 1, None)
    r.completion(T, "d", 1, 1, 1)
    assert (r.slo_misses, r.judged()) == (2, 3)
    assert r.miss_share() == pytest.approx(2 / 3)
    r.reset_slo()
    assert (r.slo_misses, r.judged(), r.miss_share()) == (0, 0, 0.0)
    assert r.mix() == (1.0, 1.0)  # the mix is not reset


def test_pending_predictions_expire_at_their_exact_age() -> None:
    r = RecentLoad(span_s=20.0, mix_span_s=50.0, pending_s=100.0)
    r.arrival(T, "old", 10, 40.0)
    r.arrival(T + 1.0, "new", 10, 40.0)
    r.age(T + 100.0)  # exactly pending_s old: kept
    r.completion(T + 100.0, "old", 10, 80, None)
    assert r.calibration() == pytest.approx(2.0)
    r2 = RecentLoad(span_s=20.0, mix_span_s=50.0, pending_s=100.0)
    r2.arrival(T, "old", 10, 40.0)
    r2.arrival(T + 1.0, "new", 10, 40.0)
    r2.age(T + 100.5)  # forgotten; the younger one stays
    r2.completion(T + 100.5, "old", 10, 80, None)
    r2.completion(T + 100.5, "new", 10, 20, None)
    assert r2.calibration() == pytest.approx(20 / 40)


def test_parameters() -> None:
    with pytest.raises(ValueError):
        RecentLoad(span_s=0.0, mix_span_s=1.0)
    with pytest.raises(ValueError):
        RecentLoad(span_s=1.0, mix_span_s=0.0)
    r = RecentLoad(span_s=1.0, mix_span_s=1.0)
    assert (r.prior, r.pending_s) == ((1000.0, 200.0), 3600.0)


def test_binomial_tail_exact_values_and_edges() -> None:
    assert binomial_tail(2, 10, 0.1) == pytest.approx(1 - 0.9**10 - 10 * 0.1 * 0.9**9)
    assert binomial_tail(3, 5, 0.5) == pytest.approx(0.5)
    assert binomial_tail(5, 5, 0.5) == pytest.approx(0.5**5)
    assert binomial_tail(1, 1, 0.3) == pytest.approx(0.3)
    assert binomial_tail(0, 5, 0.5) == 1.0 and binomial_tail(-1, 5, 0.5) == 1.0
    assert binomial_tail(2, 5, 1.0) == 1.0
    assert binomial_tail(6, 5, 0.5) == 0.0
    assert binomial_tail(2, 5, 0.0) == 0.0
    assert binomial_tail(0, 5, 0.0) == 1.0  # zero or more misses: certain, whatever the rate
    assert binomial_tail(50, 50, 0.01) == pytest.approx(math.exp(50 * math.log(0.01)), abs=1e-12)
    assert binomial_tail(1, 200, 1e-9) == pytest.approx(200 * 1e-9, rel=1e-3)
