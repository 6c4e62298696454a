from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.workload.evaluate import metrics, rolling_origin_eval
from models.workload.model import ForecasterConfig
from models.workload.series_io import WorkloadSeries
from models.workload.train import TrainConfig


def test_metrics_hand_computed() -> None:
    pred = np.array([110.0, 0.0, 50.0])
    actual = np.array([100.0, 0.0, 100.0])
    m = metrics(pred, actual, np.ones(3, bool))
    assert m["mape"] == pytest.approx((0.1 + 0.5) / 2)  # the zero actual is skipped
    assert m["smape"] == pytest.approx((20 / 210 + 0 + 100 / 150) / 3)
    assert m["mae"] == pytest.approx(20.0)


def test_rolling_origin_json_shape_and_masking() -> None:
    n = 160
    t = np.arange(n)
    req = 100 + 30 * np.sin(2 * np.pi * t / 24)
    valid = np.ones(n, bool)
    valid[140:145] = False
    s = WorkloadSeries(values=np.stack([req, req * 10, req * 5], 1), window_start=t * 3600.0, window_s=3600.0,
                       valid=valid, available=("requests", "prompt_tokens", "output_tokens"), unit="per_window",
                       source="synthetic")
    r = rolling_origin_eval(s, 3, "output_tokens", ["mlstm", "last_value", "seasonal_naive_day"],
                            ForecasterConfig(history=6, dim=8, heads=2), TrainConfig(epochs=2))
    assert r["window_s"] == 3600.0 and r["horizon"] == 3 and set(r["models"]) == {"mlstm", "last_value",
                                                                                  "seasonal_naive_day"}
    assert r["test_origins"] == n - 3 - (112 - 1)
    assert r["scored_pairs"] < 3 * r["test_origins"]  # pairs touching the gap are not scored
    for m in r["models"].values():
        assert set(m["by_horizon"]) == {"1", "2", "3"} and {"mape", "smape", "mae"} <= set(m)
    assert r["models"]["seasonal_naive_day"]["smape"] < 1e-9  # a pure daily cycle is forecast exactly
    assert r["models"]["seasonal_naive_day"]["last_value_fallback_origins"] == 0
    assert 0 <= r["models"]["mlstm"]["upper_coverage"] <= 1
    with pytest.raises(ValueError, match="not available"):
        rolling_origin_eval(replace(s, available=("requests",)), 3, "output_tokens", ["last_value"])


def test_validation_split_scores_only_the_tail_of_the_training_part() -> None:
    n = 200
    t = np.arange(n)
    req = 100 + 30 * np.sin(2 * np.pi * t / 24)
    req[140:] *= 50  # the test part is different: the validation split must not see it
    s = WorkloadSeries(values=np.stack([req, req * 10, req * 5], 1), window_start=t * 3600.0, window_s=3600.0,
                       valid=np.ones(n, bool), available=("requests", "prompt_tokens", "output_tokens"),
                       unit="per_window", source="synthetic")
    r = rolling_origin_eval(s, 2, "requests", ["last_value"], split="validation")
    assert r["split"] == "validation" and r["train_windows"] == round(140 * 0.85)
    assert r["test_origins"] == 140 - 2 - (r["train_windows"] - 1)  # origins end inside the first 140 windows
    assert r["models"]["last_value"]["mae"] < 40
    with pytest.raises(ValueError, match="split"):
        rolling_origin_eval(s, 2, "requests", ["last_value"], split="train")
