from __future__ import annotations

import numpy as np
import pytest
import torch

from models.workload.features import LogScaler, make_samples, model_inputs
from models.workload.model import ForecasterConfig, WorkloadForecaster, forecast_loss
from models.workload.train import TrainConfig, fit_forecaster, load_checkpoint, save_checkpoint

WINDOW_S = 3600.0


def _series(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly windows with a daily cycle and noise: requests, prompt tokens, output tokens."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    req = 100 * (1.5 + np.sin(2 * np.pi * t / 24)) * rng.lognormal(0, 0.05, n)
    return np.stack([req, req * 300, req * 80], axis=1), t * WINDOW_S


def _loss(net: WorkloadForecaster, values: np.ndarray, starts: np.ndarray, scaler: LogScaler) -> float:
    cfg = net.cfg
    x, y, _ = make_samples(model_inputs(values, starts, WINDOW_S, scaler), scaler.transform(values), cfg.history,
                           cfg.horizon)
    with torch.no_grad():
        point, upper = net.eval()(torch.from_numpy(x))
    return float(forecast_loss(point, upper, torch.from_numpy(y), cfg.quantile))


@pytest.mark.parametrize("backbone", ["mlstm", "lstm"])
def test_tiny_fit_lowers_the_error(backbone: str) -> None:
    values, starts = _series(160)
    cfg = ForecasterConfig(backbone=backbone, history=12, horizon=6, dim=16, heads=2, dropout=0.0)
    torch.manual_seed(0)
    before = _loss(WorkloadForecaster(cfg), values, starts, LogScaler.fit(values))
    ff = fit_forecaster(values, starts, WINDOW_S, cfg, TrainConfig(epochs=20, lr=3e-3, patience=20))
    after = _loss(ff.net, values, starts, ff.scaler)
    assert after < 0.6 * before
    point, upper = ff.predict(values, starts, np.array([100, 150]))
    assert point.shape == (2, 6, 3) and (upper >= point - 1e-9).all()
    assert np.isfinite(point).all() and (point > 0).all()


def test_same_seed_same_model_and_checkpoint_roundtrip(tmp_path) -> None:
    values, starts = _series(120)
    cfg = ForecasterConfig(history=8, horizon=3, dim=8, heads=2)
    tc = TrainConfig(epochs=3)
    a = fit_forecaster(values, starts, WINDOW_S, cfg, tc)
    b = fit_forecaster(values, starts, WINDOW_S, cfg, tc)
    pa, _ = a.predict(values, starts, np.array([50]))
    np.testing.assert_array_equal(pa, b.predict(values, starts, np.array([50]))[0])
    path = save_checkpoint(a, tmp_path / "f.pt")
    c = load_checkpoint(path)
    assert c.cfg == cfg and c.window_s == WINDOW_S
    np.testing.assert_allclose(c.predict(values, starts, np.array([50]))[0], pa)


def test_gaps_are_not_trained_on() -> None:
    values, starts = _series(120)
    valid = np.ones(120, bool)
    valid[40:60] = False
    values[40:60] = 1e9  # garbage inside the gap must not reach the training samples
    ff = fit_forecaster(values, starts, WINDOW_S, ForecasterConfig(history=8, horizon=3, dim=8, heads=2),
                        TrainConfig(epochs=2), valid=valid)
    assert ff.info["samples"] == 120 - 8 - 3 + 1 - (20 + 8 + 3 - 1)
    assert ff.scaler.mean[0] < np.log1p(1e6)


def test_too_short_series_is_rejected() -> None:
    values, starts = _series(20)
    with pytest.raises(ValueError, match="need at least"):
        fit_forecaster(values, starts, WINDOW_S, ForecasterConfig(history=15, horizon=6), TrainConfig(epochs=1))
