from __future__ import annotations

import numpy as np
import pytest

from models.request_load.simple_predictors import (
    FallbackPredictor,
    FallbackTable,
    NoisyOraclePredictor,
    OraclePredictor,
    fit_fallback,
)


def _table() -> FallbackTable:
    pt = [10] * 30 + [300] * 30 + [10] * 30
    y = [100.0] * 30 + [500.0] * 30 + [50.0] * 30
    sv = ["a"] * 60 + ["b"] * 30
    return fit_fallback(pt, y, sv, min_count=20)


def test_fallback_uses_model_and_bucket() -> None:
    pred = FallbackPredictor(_table()).predict([None, None, None], [10, 300, 10], ["a", "a", "b"])
    assert pred.source == "fallback"
    np.testing.assert_allclose(pred.mean, [100.0, 500.0, 50.0])
    assert (pred.p90 >= pred.mean).all()


def test_fallback_backs_off_for_unknown_model_and_sparse_bucket() -> None:
    fb = FallbackPredictor(_table())
    mean, _ = fb.lookup([300, 10, 5000], ["b", "zzz", "zzz"])
    assert mean[0] == pytest.approx(50.0)  # b has no long prompts: its own mean
    assert mean[1] == pytest.approx(75.0)  # bucket of 10 tokens pooled over models
    assert mean[2] == pytest.approx((100 * 30 + 500 * 30 + 50 * 30) / 90)  # global


def test_fallback_table_round_trip() -> None:
    table = _table()
    again = FallbackTable.from_dict(table.to_dict())
    assert again == table


def test_oracle_consumes_in_order_and_resets() -> None:
    oracle = OraclePredictor([1, 2, 3])
    assert oracle.predict([None], [1], ["a"]).mean.tolist() == [1.0]
    assert oracle.predict([None, None], [1, 1], ["a", "a"]).p90.tolist() == [2.0, 3.0]
    with pytest.raises(IndexError):
        oracle.predict([None], [1], ["a"])
    oracle.reset()
    assert oracle.predict([None], [1], ["a"]).source == "oracle"
    assert oracle.predict([None], [1], ["a"], true_output_tokens=[42]).mean.tolist() == [42.0]


def test_oracle_without_lengths_says_how_to_fix() -> None:
    with pytest.raises(ValueError, match="true_lengths"):
        OraclePredictor().predict([None], [1], ["a"])


def test_noisy_oracle_is_seeded_and_unbiased_in_log_space() -> None:
    truth = np.full(20000, 200.0)
    a = NoisyOraclePredictor(0.3, truth, seed=1).predict([None] * truth.size, [1] * truth.size, ["a"] * truth.size)
    b = NoisyOraclePredictor(0.3, truth, seed=1).predict([None] * truth.size, [1] * truth.size, ["a"] * truth.size)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.source == "noisy-oracle"
    assert np.std(np.log(a.mean / truth)) == pytest.approx(0.3, rel=0.05)
    assert np.median(a.mean) == pytest.approx(200.0, rel=0.02)
    assert (a.p90 > a.mean).all()


def test_noisy_oracle_zero_sigma_is_exact_and_rejects_negative() -> None:
    assert NoisyOraclePredictor(0.0).predict([None], [1], ["a"], true_output_tokens=[7]).mean.tolist() == [7.0]
    with pytest.raises(ValueError):
        NoisyOraclePredictor(-1.0)
