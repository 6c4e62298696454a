"""Online workload forecaster: one service's density windows in, multi-step mean/upper forecasts out.

Used by the PreServe scaler and the live ``forecast`` agent. Pure state (no clock, no I/O besides reading an
optional checkpoint in the constructor's caller-provided path). Units: whatever ``observe`` is given -- the live
pipeline passes per-window totals -- and forecasts come back in the same units.

Short histories: a neural model needs ``history`` windows of input and enough windows to train; until then the
forecast comes from EWMA (>= 2 windows) or the last value, with ``fallback=True`` and ``model`` naming what was
used. Without a checkpoint, the network is first trained once ``min_fit_windows`` windows are in, then
fine-tuned from its current weights every ``refit_every`` new windows on the last ``fit_windows`` windows.
Missing windows (a jump in ``window_start``) are filled with zeros: the density agent emits every window of a
service, so a hole means no completions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from models.workload.baselines import BASELINES, DAY_S, WEEK_S, baseline_forecast, seasonal_period
from models.workload.features import TARGETS
from models.workload.model import ForecasterConfig
from models.workload.train import FittedForecaster, TrainConfig, fit_forecaster, load_checkpoint

__all__ = ["ForecastOut", "OnlineForecaster", "NEURAL_MODELS", "MODEL_NAMES"]

NEURAL_MODELS = ("mlstm", "lstm")
MODEL_NAMES = NEURAL_MODELS + tuple(BASELINES)


@dataclass(frozen=True)
class ForecastOut:
    """Forecast of the ``horizon`` windows after the last observed one, per target (keys from ``TARGETS``:
    all three for baselines and for networks trained on all channels, the default)."""

    mean: dict[str, np.ndarray]  # target -> (horizon,)
    upper: dict[str, np.ndarray]  # target -> (horizon,), upper quantile (>= mean)
    first_window_start: float  # start of the first forecast window
    model: str  # what produced it (e.g. "ewma" while a neural model waits for data)
    fallback: bool  # True when ``model`` is not the one asked for


class OnlineForecaster:
    """:param window_s: window size (s) of the observed density.
    :param model: ``mlstm``, ``lstm`` or a baseline name (``last_value``, ``seasonal_naive_day``, ...).
    :param checkpoint: trained network to start from (its history/horizon/window must match).
    :param history: input windows of the network.
    :param refit_every: new windows between fine-tunes (0: never refit, e.g. with a frozen checkpoint).
    :param min_fit_windows: windows needed before the first training without a checkpoint.
    :param fit_windows: most recent windows used by a (re)fit.
    :param horizon: longest horizon the network is trained for.
    :param quantile: upper quantile (networks: pinball head; baselines: empirical quantile of past log errors).
    :param auto_refit: train inside ``observe`` when due (seconds of CPU); False leaves it to the caller, who
        checks :attr:`needs_refit` and calls :meth:`refit` (e.g. in an executor, off the event loop).
    """

    def __init__(self, window_s: float, model: str = "mlstm", checkpoint: str | None = None, history: int = 25,
                 refit_every: int = 144, min_fit_windows: int = 200, fit_windows: int = 2016, horizon: int = 6,
                 quantile: float = 0.9, train_config: TrainConfig | None = None, auto_refit: bool = True) -> None:
        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model {model!r}; choose one of {MODEL_NAMES}")
        self.window_s, self.model, self.quantile, self.auto_refit = float(window_s), model, quantile, auto_refit
        self.refit_every, self.min_fit_windows, self.fit_windows = refit_every, min_fit_windows, fit_windows
        self.tcfg = train_config or TrainConfig(epochs=40, patience=8)
        self.fitted: FittedForecaster | None = load_checkpoint(checkpoint) if checkpoint else None
        if self.fitted is not None:
            if abs(self.fitted.window_s - self.window_s) > 1e-9:
                raise ValueError(f"checkpoint window {self.fitted.window_s} s != {self.window_s} s")
            self.cfg = self.fitted.cfg
        else:
            self.cfg = ForecasterConfig(backbone=model if model in NEURAL_MODELS else "mlstm", history=history,
                                        horizon=horizon, quantile=quantile)
        self._starts: list[float] = []
        self._values: list[list[float]] = []
        self._since_fit = 0

    def __len__(self) -> int:
        return len(self._values)

    def observe(self, window_start: float, requests: float, prompt_tokens: float, output_tokens: float) -> None:
        """Add one finished window. Older or repeated windows replace/ignore nothing: they are dropped."""
        if self._starts and window_start <= self._starts[-1] + 1e-9:
            if abs(window_start - self._starts[-1]) <= 1e-9:
                self._values[-1] = [float(requests), float(prompt_tokens), float(output_tokens)]
            return
        if self._starts:
            missing = int(round((window_start - self._starts[-1]) / self.window_s)) - 1
            for _ in range(max(0, missing)):
                self._append(self._starts[-1] + self.window_s, [0.0, 0.0, 0.0])
        self._append(window_start, [float(requests), float(prompt_tokens), float(output_tokens)])
        if self.auto_refit and self.needs_refit:
            self.refit()

    def _append(self, start: float, row: list[float]) -> None:
        self._starts.append(float(start))
        self._values.append(row)
        self._since_fit += 1
        cap = max(self.fit_windows, seasonal_period(self.window_s, WEEK_S) + self.cfg.horizon + 1)
        if len(self._values) > 2 * cap:  # bounded memory for a long-running agent
            del self._values[:-cap], self._starts[:-cap]

    @property
    def needs_refit(self) -> bool:
        if self.model not in NEURAL_MODELS:
            return False
        if self.fitted is None:
            return len(self._values) >= max(self.min_fit_windows, self.cfg.history + self.cfg.horizon + 8)
        return self.refit_every > 0 and self._since_fit >= self.refit_every

    def refit(self) -> None:
        """(Re)train the network on the recent windows (warm start when already fitted); seconds on CPU."""
        vals = np.asarray(self._values[-self.fit_windows:], dtype=float)
        starts = np.asarray(self._starts[-self.fit_windows:], dtype=float)
        tcfg = self.tcfg if self.fitted is None else replace(self.tcfg, epochs=max(1, self.tcfg.epochs // 4))
        self.fitted = fit_forecaster(vals, starts, self.window_s, self.cfg, tcfg, init=self.fitted)
        self._since_fit = 0

    def forecast(self, horizon: int) -> ForecastOut:
        """Forecast ``horizon`` windows after the last observed one (needs at least one observed window)."""
        if not self._values:
            raise ValueError("no window observed yet")
        vals = np.asarray(self._values, dtype=float)
        first = self._starts[-1] + self.window_s
        neural_ready = (self.model in NEURAL_MODELS and self.fitted is not None
                        and len(vals) >= self.fitted.cfg.history and horizon <= self.fitted.cfg.horizon)
        if neural_ready:
            assert self.fitted is not None
            point, upper = self.fitted.predict(vals, np.asarray(self._starts), np.array([len(vals) - 1]))
            names = [TARGETS[i] for i in self.fitted.cfg.targets]
            return ForecastOut(mean={k: point[0, :horizon, j] for j, k in enumerate(names)},
                               upper={k: upper[0, :horizon, j] for j, k in enumerate(names)},
                               first_window_start=first, model=self.model, fallback=False)
        name = self._baseline_name(len(vals))
        return self._baseline(name, vals, horizon, first)

    def _baseline_name(self, n: int) -> str:
        if self.model in BASELINES and self.model.startswith("seasonal"):
            season = DAY_S if self.model.endswith("day") else WEEK_S
            return self.model if n >= seasonal_period(self.window_s, season) else "last_value"
        if self.model in BASELINES:
            return self.model
        return "ewma" if n >= 2 else "last_value"

    def _baseline(self, name: str, vals: np.ndarray, horizon: int, first: float) -> ForecastOut:
        mean = baseline_forecast(name, vals, np.array([len(vals) - 1]), horizon, self.window_s)[0]  # (H, C)
        factor = self._upper_factor(name, vals, horizon)
        return ForecastOut(mean={k: mean[:, j] for j, k in enumerate(TARGETS)},
                           upper={k: mean[:, j] * factor[:, j] for j, k in enumerate(TARGETS)},
                           first_window_start=first, model=name, fallback=name != self.model)

    def _upper_factor(self, name: str, vals: np.ndarray, horizon: int) -> np.ndarray:
        """(H, C) multiplier >= 1: the quantile of the baseline's own past ratios actual/forecast (1 if < 5)."""
        recent = vals[-min(len(vals), 1000):]
        origins = np.arange(0, len(recent) - horizon)
        factor = np.ones((horizon, vals.shape[1]))
        if len(origins) < 5:
            return factor
        pred = baseline_forecast(name, recent, origins, horizon, self.window_s)
        actual = recent[origins[:, None] + np.arange(1, horizon + 1)[None, :]]
        ratio = np.log1p(actual) - np.log1p(pred)  # (S, H, C)
        return np.maximum(np.exp(np.quantile(ratio, self.quantile, axis=0)), 1.0)
