from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.workload import OnlineForecaster
from models.workload.model import ForecasterConfig
from models.workload.train import FittedForecaster, TrainConfig, fit_forecaster, save_checkpoint

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
    with pytest.raises(ValueError, match="multiple"):
        OnlineForecaster(700.0, "mlstm", checkpoint=str(path))


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


def _tiny_checkpoint(tmp_path, window: float = W, unit: str | None = None):  # type: ignore[no-untyped-def]
    t = np.arange(120)
    vals = np.stack([100 + 10 * np.sin(t / 10)] * 3, axis=1)
    ff = fit_forecaster(vals, t * window, window, ForecasterConfig(history=6, horizon=4, dim=8, heads=2, members=1),
                        TrainConfig(epochs=1))
    if unit:
        ff.info["unit"] = unit
    return ff, save_checkpoint(ff, tmp_path / "ckpt.pt")


def test_quantiles_are_calibrated_on_the_forecasters_own_errors() -> None:
    rng = np.random.default_rng(0)
    f = OnlineForecaster(W, "last_value")
    hits, n = {"0.5": 0, "0.9": 0, "0.99": 0}, 0
    prev = None
    for t in range(1500):
        y = float(np.exp(5 + 0.3 * rng.standard_normal()))  # iid lognormal around a constant level
        if prev is not None and t > 500:  # after the pools have filled
            n += 1
            for q in hits:
                hits[q] += y <= prev.quantiles["requests"][q][0]
        f.observe(t * W, y, y, y)
        prev = f.forecast(3)
    assert prev is not None and set(prev.quantiles["requests"]) == {"0.5", "0.9", "0.99"}
    assert np.array_equal(prev.upper["requests"], prev.quantiles["requests"]["0.9"])
    assert abs(hits["0.5"] / n - 0.5) < 0.05 and abs(hits["0.9"] / n - 0.9) < 0.03 and hits["0.99"] / n > 0.97


def test_online_choice_drops_a_bad_network_for_persistence(tmp_path) -> None:
    ff, path = _tiny_checkpoint(tmp_path)
    f = OnlineForecaster(W, "mlstm", checkpoint=str(path), refit_every=0, choice_window=12, min_choice=6)
    bad = FittedForecaster(cfg=ff.cfg, scaler=replace(ff.scaler, mean=ff.scaler.mean + 3.0), window_s=W,
                           net=ff.net, info={})  # forecasts far off the level: exp(3 * std) too high
    f.install(bad)
    _feed(f, 8)
    out = f.forecast(4)
    assert out.model == "mlstm" and not out.fallback  # no evidence yet: the network is trusted
    for t in range(8, 30):
        _feed(f, 1, start=t)
        out = f.forecast(4)
    assert out.fallback and set(out.models.values()) <= {"last_value", "ewma"}
    f.install(ff)  # a sound network again: taken back once its recent errors are the smallest
    for t in range(30, 70):
        _feed(f, 1, start=t)
        out = f.forecast(4)
    assert "mlstm" in out.models.values()


def test_a_600s_checkpoint_forecasts_60s_windows_by_aggregating_and_spreading(tmp_path) -> None:
    ff, path = _tiny_checkpoint(tmp_path, unit="per_second")
    f = OnlineForecaster(60.0, "mlstm", checkpoint=str(path), refit_every=0)
    assert f.k == 10
    rng = np.random.default_rng(1)
    rows = [(t * 60.0, *(rng.poisson(50, 3) + 1.0)) for t in range(75)]  # 7.5 blocks of 600 s
    for r in rows:
        f.observe(*r)
        out = f.forecast(20)
    assert not out.fallback and out.mean["requests"].shape == (20,)
    m = out.mean["requests"]
    assert np.allclose(m[:10], m[0]) and np.allclose(m[10:], m[10])  # one 600 s forecast spread over 10 windows
    vals = np.array([r[1:] for r in rows])[-70:].reshape(7, 10, 3).sum(1) / 600.0  # blocks ending at the newest
    starts = np.array([r[0] for r in rows])[-70::10]
    point, _ = ff.predict(vals, starts, np.array([6]))
    assert m[0] == pytest.approx(point[0, 0, 0] * 600.0 / 10)


def test_refit_job_runs_apart_and_install_swaps(tmp_path) -> None:
    f = OnlineForecaster(W, "lstm", history=8, horizon=3, min_fit_windows=40, auto_refit=False,
                         train_config=TrainConfig(epochs=1))
    _feed(f, 45)
    job = f.refit_job()
    assert f.fitted is None and not f.needs_refit  # the job is under way; nothing installed yet
    _feed(f, 3, start=45)  # windows keep arriving while it trains
    fitted = job()
    assert f.fitted is None
    f.install(fitted)
    assert f.fitted is fitted and not f.forecast(3).fallback


def test_the_shipped_checkpoint_is_loaded_by_default_where_its_window_fits() -> None:
    from models.workload.online import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.exists():
        pytest.skip(f"{DEFAULT_CHECKPOINT} not shipped")
    f600, f60 = OnlineForecaster(600.0), OnlineForecaster(60.0)
    assert f600.fitted is not None and f600.k == 1 and f60.fitted is not None and f60.k == 10
    assert OnlineForecaster(700.0).fitted is None and OnlineForecaster(600.0, history=25).fitted is None
    assert OnlineForecaster(600.0, "lstm").fitted is None
