from __future__ import annotations

from dataclasses import replace

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
    cfg = ForecasterConfig(backbone=backbone, history=12, horizon=6, dim=16, heads=2, dropout=0.0, members=1)
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


def test_ensemble_is_the_mean_of_its_separately_seeded_members(tmp_path) -> None:
    values, starts = _series(120)
    tc = TrainConfig(epochs=2)
    cfg = ForecasterConfig(history=8, horizon=3, dim=8, heads=2, members=2)
    ens = fit_forecaster(values, starts, WINDOW_S, cfg, replace(tc, seed=1))
    assert len(ens.net.members) == 2 and ens.info["params"] == 2 * ens.info["params_per_member"]
    single = replace(cfg, members=1)
    origins = np.array([40, 90])
    # member k of ensemble seed s is the single network of seed s * members + k
    logs = [np.log1p(fit_forecaster(values, starts, WINDOW_S, single, replace(tc, seed=s)).predict(
        values, starts, origins)[0]) for s in (2, 3)]
    np.testing.assert_allclose(np.log1p(ens.predict(values, starts, origins)[0]), np.mean(logs, axis=0), rtol=1e-5)
    c = load_checkpoint(save_checkpoint(ens, tmp_path / "e.pt"))
    assert c.cfg.members == 2
    np.testing.assert_allclose(c.predict(values, starts, origins)[0], ens.predict(values, starts, origins)[0])


def test_a_format_1_checkpoint_still_loads_as_one_origin_relative_network(tmp_path) -> None:
    values, starts = _series(120)
    cfg = ForecasterConfig(history=8, horizon=3, dim=8, heads=2, level_alpha=1.0, members=1)
    ff = fit_forecaster(values, starts, WINDOW_S, cfg, TrainConfig(epochs=1))
    old_config = {k: v for k, v in cfg.to_dict().items() if k not in ("level_alpha", "members")}
    torch.save({"format": "preserve-workload-forecaster/1", "config": old_config, "scaler": ff.scaler.to_dict(),
                "window_s": WINDOW_S, "info": {}, "state_dict": ff.net.members[0].state_dict()}, tmp_path / "old.pt")
    c = load_checkpoint(tmp_path / "old.pt")
    assert c.cfg == cfg
    np.testing.assert_allclose(c.predict(values, starts, np.array([50]))[0], ff.predict(values, starts,
                                                                                         np.array([50]))[0])
