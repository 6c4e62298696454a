from __future__ import annotations

import numpy as np
import pytest

from models.workload import OnlineForecaster
from models.workload.model import ForecasterConfig
from models.workload.train import TrainConfig, fit_forecaster, save_checkpoint

W = 600.0


def _feed(f: OnlineForecaster, n: int, start: int = 0) -> None:
    for t in range(start, start + n):
        r = 100 + 40 * np.sin(2 * np.pi * t / 144)
        f.observe(t * W, r, r * 200, r * 50)


def test_no_window_yet_is_an_error() -> None:
    with pytest.raises(ValueError, match="no window"):
        OnlineForecaster(W).forecast(3)


def test_short_history_falls_back_and_says_so() -> None:
    f = OnlineForecaster(W, "mlstm", history=25)
    f.observe(0.0, 10, 1000, 500)
    out = f.forecast(6)
    assert out.fallback and out.model == "last_value"
    assert out.mean["requests"].tolist() == [10.0] * 6 and out.first_window_start == W
    f.observe(W, 20, 2000, 1000)
    out = f.forecast(6)
    assert out.fallback and out.model == "ewma" and out.mean["output_tokens"][0] == pytest.approx(750.0)
    _feed(f, 30, start=2)
    out = f.forecast(6)
    assert out.fallback and all((out.upper[k] >= out.mean[k]).all() for k in out.mean)
    assert (out.upper["requests"] > out.mean["requests"]).any()  # the empirical quantile widens it


def test_trains_once_enough_windows_then_uses_the_network() -> None:
    f = OnlineForecaster(W, "lstm", history=8, horizon=3, min_fit_windows=40, refit_every=0,
                         train_config=TrainConfig(epochs=2))
    _feed(f, 39)
    assert f.fitted is None and f.forecast(3).fallback
    _feed(f, 1, start=39)
    out = f.forecast(3)
    assert f.fitted is not None and not out.fallback and out.model == "lstm"
    assert out.mean["prompt_tokens"].shape == (3,) and np.isfinite(out.mean["prompt_tokens"]).all()
    assert f.forecast(6).fallback  # beyond the trained horizon: baseline, flagged


def test_checkpoint_is_used_as_soon_as_history_is_full(tmp_path) -> None:
    t = np.arange(100)
    vals = np.stack([100 + 10 * np.sin(t / 10)] * 3, axis=1)
    ff = fit_forecaster(vals, t * W, W, ForecasterConfig(history=6, horizon=4, dim=8, heads=2), TrainConfig(epochs=1))
    path = save_checkpoint(ff, tmp_path / "ckpt.pt")
    f = OnlineForecaster(W, "mlstm", checkpoint=str(path), refit_every=0)
    _feed(f, 5)
    assert f.forecast(4).fallback
    _feed(f, 1, start=5)
    assert not f.forecast(4).fallback
    with pytest.raises(ValueError, match="window"):
        OnlineForecaster(60.0, "mlstm", checkpoint=str(path))


def test_missing_windows_are_zero_and_repeats_replace() -> None:
    f = OnlineForecaster(W, "last_value")
    f.observe(0.0, 5, 5, 5)
    f.observe(3 * W, 7, 7, 7)
    assert len(f) == 4
    f.observe(3 * W, 9, 9, 9)  # a corrected window replaces the last one
    f.observe(W, 1, 1, 1)  # an old window is ignored
    assert len(f) == 4 and f.forecast(1).mean["requests"][0] == 9.0


def test_seasonal_baseline_waits_for_a_full_day() -> None:
    f = OnlineForecaster(W, "seasonal_naive_day")
    _feed(f, 100)
    assert f.forecast(2).model == "last_value" and f.forecast(2).fallback
    _feed(f, 100, start=100)
    out = f.forecast(2)
    assert out.model == "seasonal_naive_day" and not out.fallback
    expected = 100 + 40 * np.sin(2 * np.pi * 200 / 144)  # same time yesterday = same phase
    assert out.mean["requests"][0] == pytest.approx(expected)


def test_unknown_model() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        OnlineForecaster(W, "arima")


def test_manual_refit_when_auto_refit_is_off() -> None:
    f = OnlineForecaster(W, "mlstm", history=8, horizon=3, min_fit_windows=40, auto_refit=False,
                         train_config=TrainConfig(epochs=1))
    _feed(f, 45)
    assert f.fitted is None and f.needs_refit
    f.refit()
    assert not f.needs_refit and not f.forecast(3).fallback
