"""Online workload forecaster: one service's density windows in, multi-step quantile forecasts out.

Used by the PreServe scaler and the live ``forecast`` agent. Pure state (no clock, no I/O besides reading a
checkpoint in the constructor). Units: whatever ``observe`` is given -- the live pipeline passes per-window
totals -- and forecasts come back in the same units.

**Candidates and the online choice.** A network forecaster keeps three candidates: the network, the last value
and EWMA. Every ``forecast`` records each candidate's point forecast; when the windows it forecast arrive, their
log errors ``log1p(y) - log1p(p)`` go into per-candidate, per-horizon pools (the last ``conformal_window``).
Per target, the forecast comes from the candidate with the smallest mean absolute log error over the last
``choice_window`` resolved origins (all horizons); while the network has fewer than ``min_choice`` scored
origins it is trusted (it was validated offline). So a network that goes wrong for a service is replaced by
persistence/EWMA within about ``choice_window`` windows, and taken back when it is better again.

**Quantiles** (``quantiles``, default 0.5/0.9/0.99) are the chosen candidate's point forecast shifted by the
conformal quantile of its own recent log errors at that horizon, at a level that adapts to the misses of the
quantiles issued so far (the rolling + adaptive conformal of :mod:`models.workload.protocol`). With fewer than ``min_pool`` errors of its own, the last value's errors
over the stored history stand in (computable at once); ``upper`` is the ``quantile`` one (0.9), as before.

**Network.** ``checkpoint="auto"`` (the default) loads the shipped checkpoint
(:data:`DEFAULT_CHECKPOINT`, trained on the shared ServeGen series at 600 s) when ``model`` is its backbone,
``history``/``horizon`` are not given, and its window is a whole multiple k of ``window_s``. With k > 1 (e.g. the
scaler's 60 s windows) the network runs on the *aggregated* series -- the last ``n // k`` blocks of k windows,
summed, ending at the newest window -- and the forecast of each 600 s block is spread evenly over its k windows
(window i of the horizon gets ``block[i // k] / k``); the conformal errors are measured at the native window, so
the quantiles include the sub-block noise the spreading cannot see. A checkpoint trained on per-second rates
(ServeGen) is fed ``block total / block seconds``. Without a checkpoint the network is trained once
``min_fit_windows`` windows are in; with one, it is fine-tuned every ``refit_every`` windows (warm start, a
quarter of the epochs) on the recent (aggregated) windows -- inside ``observe`` unless ``auto_refit=False``, in
which case the caller checks :attr:`needs_refit` and calls :meth:`refit`, or, to train off the event loop,
runs :meth:`refit_job`'s callable in an executor and passes its result to :meth:`install`.
Missing windows (a jump in ``window_start``) are filled with zeros: the density agent emits every window of a
service, so a hole means no completions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from models.workload.baselines import BASELINES, DAY_S, WEEK_S, baseline_forecast, seasonal_period
from models.workload.features import TARGETS
from models.workload.model import ForecasterConfig
from models.workload.protocol import ACI_GAMMA, aci_update, conformal_level
from models.workload.train import FittedForecaster, TrainConfig, fit_forecaster, load_checkpoint

__all__ = ["ForecastOut", "OnlineForecaster", "NEURAL_MODELS", "MODEL_NAMES", "DEFAULT_CHECKPOINT",
           "DEFAULT_QUANTILES"]

NEURAL_MODELS = ("mlstm", "lstm")
MODEL_NAMES = NEURAL_MODELS + tuple(BASELINES)
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "forecaster_mlstm_600s.pt"
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
_TAIL = 64  # windows the EWMA/last-value candidates read (alpha 0.5: 2^-64 of weight left out)


@dataclass(frozen=True)
class ForecastOut:
    """Forecast of the ``horizon`` windows after the last observed one, per target (keys from ``TARGETS``)."""

    mean: dict[str, np.ndarray]  # target -> (horizon,) point forecast
    upper: dict[str, np.ndarray]  # target -> (horizon,), the forecaster's ``quantile`` (>= mean)
    first_window_start: float  # start of the first forecast window
    model: str  # what produced it (e.g. "ewma" while a neural model waits for data; "a+b" when targets differ)
    fallback: bool  # True when ``model`` is not the one asked for
    quantiles: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # target -> {"0.9": (horizon,)}
    models: dict[str, str] = field(default_factory=dict)  # target -> candidate that produced it


class OnlineForecaster:
    """:param window_s: window size (s) of the observed density.
    :param model: ``mlstm``, ``lstm`` or a baseline name (``last_value``, ``seasonal_naive_day``, ...).
    :param checkpoint: trained network to start from; ``"auto"``: the shipped one where it fits (module doc);
        None: none (train from ``min_fit_windows`` windows).
    :param history: input windows of a network trained here (None: the checkpoint's, or 25).
    :param refit_every: new windows between fine-tunes (0: never refit, e.g. with a frozen checkpoint).
    :param min_fit_windows: windows needed before the first training without a checkpoint.
    :param fit_windows: most recent (network-resolution) windows used by a (re)fit.
    :param horizon: horizon of a network trained here (None: the checkpoint's, or 6).
    :param quantile: the quantile returned as ``upper``.
    :param auto_refit: train inside ``observe`` when due (seconds of CPU); False leaves it to the caller.
    :param quantiles: quantiles returned in ``ForecastOut.quantiles``.
    :param conformal_window: recent errors per candidate and horizon behind the quantiles.
    :param choice_window: recent scored origins behind the choice between network and baselines.
    """

    def __init__(self, window_s: float, model: str = "mlstm", checkpoint: str | Path | None = "auto",
                 history: int | None = None, refit_every: int = 144, min_fit_windows: int = 200,
                 fit_windows: int = 2016, horizon: int | None = None, quantile: float = 0.9,
                 train_config: TrainConfig | None = None, auto_refit: bool = True,
                 quantiles: Sequence[float] = DEFAULT_QUANTILES, conformal_window: int = 288,
                 choice_window: int = 36, min_choice: int = 12, min_pool: int = 20) -> None:
        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model {model!r}; choose one of {MODEL_NAMES}")
        self.window_s, self.model, self.quantile, self.auto_refit = float(window_s), model, quantile, auto_refit
        self.refit_every, self.min_fit_windows, self.fit_windows = refit_every, min_fit_windows, fit_windows
        self.quantiles = tuple(sorted({*quantiles, quantile}))
        self.conformal_window, self.choice_window = conformal_window, choice_window
        self.min_choice, self.min_pool = min_choice, min_pool
        self.tcfg = train_config or TrainConfig(epochs=40, patience=8)
        self.fitted: FittedForecaster | None = None
        self.k = 1  # native windows per network window
        if checkpoint == "auto":
            checkpoint = self._auto_checkpoint(history, horizon)
        if checkpoint is not None and model in NEURAL_MODELS:
            self.fitted = load_checkpoint(checkpoint)
            ratio = self.fitted.window_s / self.window_s
            if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
                raise ValueError(f"checkpoint window {self.fitted.window_s} s is not a whole multiple of "
                                 f"{self.window_s} s")
            self.k = int(round(ratio))
            self.cfg = self.fitted.cfg
        else:
            self.cfg = ForecasterConfig(backbone=model if model in NEURAL_MODELS else "mlstm",
                                        history=25 if history is None else history,
                                        horizon=6 if horizon is None else horizon, quantile=quantile)
        self._starts: list[float] = []
        self._values: list[list[float]] = []
        self._n_total = 0  # windows ever appended (absolute index of the next one)
        self._since_fit = 0
        self._job_out = False
        # (origin index, cand -> (H, C) forecast, cand -> (H, C) log errors as they resolve, (Q, H, C) issued
        # quantile forecasts)
        self._pending: deque[tuple[int, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]] = deque()
        self._delta = np.zeros((len(self.quantiles), 0, len(TARGETS)))  # adaptive conformal levels (Q, H, C)
        self._resid: dict[str, list[deque[np.ndarray]]] = {}  # cand -> per horizon: deque of (C,) log errors
        self._scores: dict[str, deque[np.ndarray]] = {}  # cand -> per resolved origin: (C,) mean |error|

    def _auto_checkpoint(self, history: int | None, horizon: int | None) -> Path | None:
        if self.model != "mlstm" or history is not None or horizon is not None or not DEFAULT_CHECKPOINT.exists():
            return None
        ck_window = 600.0  # the shipped checkpoint's (checked again after loading)
        ratio = ck_window / self.window_s
        return DEFAULT_CHECKPOINT if ratio >= 1 and abs(ratio - round(ratio)) < 1e-6 else None

    def __len__(self) -> int:
        return len(self._values)

    # ---- data in ---------------------------------------------------------------------------------------
    def observe(self, window_start: float, requests: float, prompt_tokens: float, output_tokens: float) -> None:
        """Add one finished window. Older windows are dropped; a repeated one replaces the last."""
        if self._starts and window_start <= self._starts[-1] + 1e-9:
            if abs(window_start - self._starts[-1]) <= 1e-9:
                self._values[-1] = [float(requests), float(prompt_tokens), float(output_tokens)]
            return
        if self._starts:
            missing = int(round((window_start - self._starts[-1]) / self.window_s)) - 1
            skip = max(0, missing - self._memory())
            first = self._starts[-1] + (skip + 1) * self.window_s
            self._skip(skip)
            for j in range(max(0, missing - skip)):
                self._append(first + j * self.window_s, [0.0, 0.0, 0.0])
        self._append(window_start, [float(requests), float(prompt_tokens), float(output_tokens)])
        if self.auto_refit and self.needs_refit:
            self.refit()

    def _append(self, start: float, row: list[float]) -> None:
        self._starts.append(float(start))
        self._values.append(row)
        self._resolve(self._n_total, np.asarray(row, dtype=float))
        self._n_total += 1
        self._since_fit += 1
        cap = self._memory()
        if len(self._values) > 2 * cap:  # bounded memory for a long-running agent
            del self._values[:-cap], self._starts[:-cap]

    def _memory(self) -> int:
        """Windows kept (at least): what a fit, the network and the weekly seasonal baseline read."""
        return max(self.fit_windows * self.k, self._network_span(),
                   seasonal_period(self.window_s, WEEK_S) + self.cfg.horizon * self.k + 1)

    def _skip(self, n: int) -> None:
        """Pass over the first ``n`` zero windows of a gap longer than the memory without storing them (the
        memory is then all zeros anyway): a gap of ten days costs what a gap of the memory costs, not ten days
        of windows. Forecasts issued before the gap are resolved against its first (zero) windows."""
        if n <= 0:
            return
        zeros = np.zeros(len(TARGETS))
        reach = max((len(next(iter(c.values()))) for _, c, _, _ in self._pending), default=0)
        for j in range(min(n, reach)):
            self._resolve(self._n_total + j, zeros)
        self._n_total += n
        self._since_fit += n

    def _resolve(self, index: int, actual: np.ndarray) -> None:
        """Score the recorded forecasts that covered window ``index``."""
        log_y = np.log1p(np.maximum(actual, 0.0))
        for origin, cands, errs, issued in self._pending:
            h = index - origin  # 1-based horizon of this window from that origin
            if 1 <= h <= issued.shape[1]:  # the issued quantiles: adapt their levels (protocol.aci_update)
                for c in range(len(TARGETS)):
                    self._delta[:, h - 1, c] = aci_update(self._delta[:, h - 1, c], actual[c] > issued[:, h - 1, c],
                                                          self.quantiles, ACI_GAMMA)
            for cand, pred in cands.items():
                if 1 <= h <= len(pred):
                    r = log_y - np.log1p(np.maximum(pred[h - 1], 0.0))
                    pools = self._resid.setdefault(cand, [])
                    while len(pools) < len(pred):
                        pools.append(deque(maxlen=self.conformal_window))
                    pools[h - 1].append(r)
                    errs[cand][h - 1] = r
        while self._pending and index - self._pending[0][0] >= len(next(iter(self._pending[0][1].values()))):
            _, cands, errs, _ = self._pending.popleft()  # fully resolved: its mean |error| over all horizons
            for cand in cands:
                self._scores.setdefault(cand, deque(maxlen=self.choice_window)).append(np.abs(errs[cand]).mean(0))

    # ---- refits ----------------------------------------------------------------------------------------
    def _network_span(self) -> int:
        """Native windows the network reads for one forecast (history, day lags, horizon), at least 1."""
        cfg = self.cfg
        period = max(1, int(round(DAY_S / (self.window_s * self.k))))
        return (cfg.history + (cfg.day_lags * period if cfg.memory else 0) + cfg.horizon + 1) * self.k

    def _network_series(self, vals: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The series the network sees: blocks of k windows (summed) ending at the newest, in its unit."""
        k = self.k
        n_blocks = len(vals) // k
        v = vals[len(vals) - n_blocks * k:].reshape(n_blocks, k, vals.shape[1]).sum(1)
        s = starts[len(vals) - n_blocks * k::k]
        if self.fitted is not None and self.fitted.info.get("unit") == "per_second":
            v = v / (self.window_s * k)
        return v, s

    @property
    def needs_refit(self) -> bool:
        if self.model not in NEURAL_MODELS or self._job_out:
            return False
        blocks = len(self._values) // self.k
        if self.fitted is None:
            return blocks >= max(self.min_fit_windows, self.cfg.needed_history + self.cfg.horizon + 8)
        enough = blocks >= self.cfg.needed_history + self.cfg.horizon + 30
        return self.refit_every > 0 and self._since_fit >= self.refit_every and enough

    def refit_job(self) -> Callable[[], FittedForecaster]:
        """A callable that trains on a snapshot of the recent windows and returns the new network (warm start
        when one is fitted); it touches no state of this object, so it can run in an executor while windows
        keep arriving. Pass its result to :meth:`install`."""
        vals, starts = self._network_series(np.asarray(self._values, dtype=float), np.asarray(self._starts))
        vals, starts = vals[-self.fit_windows:], starts[-self.fit_windows:]
        init = self.fitted
        tcfg = self.tcfg if init is None else replace(self.tcfg, epochs=max(1, self.tcfg.epochs // 4))
        cfg, window = self.cfg, self.window_s * self.k
        self._since_fit = 0
        self._job_out = True  # no other job until this one is installed (or abandoned: install(None))

        def job() -> FittedForecaster:
            ff = fit_forecaster(vals, starts, window, cfg, tcfg, init=init)
            if init is not None and "unit" in init.info:
                ff.info["unit"] = init.info["unit"]
            return ff

        return job

    def install(self, fitted: FittedForecaster | None) -> None:
        """Swap in a network returned by a :meth:`refit_job` callable; None (the job failed) keeps the current
        one and allows the next job."""
        self._job_out = False
        if fitted is not None:
            self.fitted = fitted

    def refit(self) -> None:
        """(Re)train the network now (seconds on CPU); same as ``install(refit_job()())``."""
        self.install(self.refit_job()())

    # ---- forecasts -------------------------------------------------------------------------------------
    def _network_point(self, vals: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray | None:
        """(horizon, C) native-window forecast of the network, or None when it can't answer."""
        ff = self.fitted
        if self.model not in NEURAL_MODELS or ff is None or horizon > ff.cfg.horizon * self.k:
            return None
        span = self._network_span()
        v, s = self._network_series(vals[-span:], starts[-span:])
        if len(v) < ff.cfg.needed_history:
            return None
        point, _ = ff.predict(v, s, np.array([len(v) - 1]))  # (1, H, T)
        if ff.info.get("unit") == "per_second":
            point = point * (self.window_s * self.k)
        out = np.full((horizon, len(TARGETS)), np.nan)
        idx = np.arange(horizon) // self.k
        for j, ch in enumerate(ff.cfg.targets):
            out[:, ch] = point[0, idx, j] / self.k
        if np.isnan(out).any():  # a network trained on fewer channels: the rest from EWMA
            ew = baseline_forecast("ewma", vals[-_TAIL:], np.array([min(len(vals), _TAIL) - 1]), horizon,
                                   self.window_s)[0]
            out = np.where(np.isnan(out), ew, out)
        return out

    def forecast(self, horizon: int) -> ForecastOut:
        """Forecast ``horizon`` windows after the last observed one (needs at least one observed window)."""
        if not self._values:
            raise ValueError("no window observed yet")
        vals = np.asarray(self._values, dtype=float)
        starts = np.asarray(self._starts, dtype=float)
        first = self._starts[-1] + self.window_s
        cands: dict[str, np.ndarray] = {}
        net = self._network_point(vals, starts, horizon)
        if net is not None:
            cands[self.model] = net
        base = self._baseline_name(len(vals))
        tail = vals[-_TAIL:] if base in ("last_value", "ewma") else vals
        cands[base] = baseline_forecast(base, tail, np.array([len(tail) - 1]), horizon, self.window_s)[0]
        if self.model in NEURAL_MODELS and len(vals) >= 2:
            cands["last_value"] = vals[-1][None, :].repeat(horizon, 0)
        if self._pending and self._pending[-1][0] == self._n_total - 1:
            self._pending.pop()  # forecast again from the same origin: keep the latest
        chosen = {t: self._choose(cands, j) for j, t in enumerate(TARGETS)}
        mean = {t: cands[c][:, j] for j, (t, c) in enumerate(chosen.items())}
        if self._delta.shape[1] < horizon:
            grow = np.zeros((len(self.quantiles), horizon - self._delta.shape[1], len(TARGETS)))
            self._delta = np.concatenate([self._delta, grow], axis=1)
        cache: dict[tuple[str, int], np.ndarray] = {}
        quant = {t: self._quantiles(chosen[t], mean[t], j, vals, cache) for j, t in enumerate(TARGETS)}
        issued = np.array([[quant[t][str(q)] for t in TARGETS] for q in self.quantiles]).transpose(0, 2, 1)
        self._pending.append((self._n_total - 1, cands, {c: np.zeros_like(p) for c, p in cands.items()}, issued))
        names = set(chosen.values())
        model = names.pop() if len(names) == 1 else "+".join(sorted(set(chosen.values())))
        return ForecastOut(mean=mean, upper={t: quant[t][str(self.quantile)] for t in TARGETS},
                           first_window_start=first, model=model, fallback=model != self.model,
                           quantiles=quant, models=chosen)

    def _choose(self, cands: dict[str, np.ndarray], ch: int) -> str:
        if self.model not in cands:  # the network can't answer (yet): the baseline
            return next(iter(cands))
        net_scores = self._scores.get(self.model, ())
        if len(net_scores) < self.min_choice:
            return self.model
        best, best_err = self.model, float(np.mean([s[ch] for s in net_scores]))
        for cand in cands:
            sc = self._scores.get(cand, ())
            if cand != self.model and len(sc) >= self.min_choice:
                err = float(np.mean([s[ch] for s in sc]))
                if err < best_err - 1e-12:
                    best, best_err = cand, err
        return best

    def _quantiles(self, cand: str, point: np.ndarray, ch: int, vals: np.ndarray,
                   cache: dict[tuple[str, int], np.ndarray]) -> dict[str, np.ndarray]:
        horizon = len(point)
        pools = self._resid.get(cand, [])
        retro: np.ndarray | None = None
        logp = np.log1p(np.maximum(point, 0.0))
        out = {str(q): np.empty(horizon) for q in self.quantiles}
        for h in range(horizon):
            key = (cand, h)
            if key not in cache:  # sorted once per forecast for all channels: (n, C)
                cache[key] = (np.sort(np.asarray(pools[h]), axis=0) if h < len(pools) and len(pools[h])
                              else np.empty((0, len(TARGETS))))
            pool = cache[key][:, ch]
            if len(pool) < self.min_pool:
                if retro is None:
                    retro = np.sort(self._retro_residuals(vals, horizon, ch), axis=0)
                pool = retro[:, h] if len(retro) else np.zeros(1)
            n = len(pool)
            levels = np.array([conformal_level(n, min(1.0, max(0.0, q + d)))
                               for q, d in zip(self.quantiles, self._delta[:, h, ch], strict=True)])
            qs = pool[np.ceil(levels * (n - 1) - 1e-9).astype(int)]  # numpy's "higher" quantile of a sorted pool
            for q, r in zip(self.quantiles, np.maximum.accumulate(qs), strict=True):
                value = point[h] if r == 0 else np.expm1(logp[h] + r)
                # upper quantiles stay >= the point forecast (the ``upper >= mean`` contract of ``upper``)
                out[str(q)][h] = max(value, point[h]) if q > 0.5 else value
        return out

    def _retro_residuals(self, vals: np.ndarray, horizon: int, ch: int) -> np.ndarray:
        """(S, H) log errors of the last value over the stored history (at most ``conformal_window`` origins)."""
        recent = vals[-min(len(vals), self.conformal_window + horizon):, ch]
        origins = np.arange(0, len(recent) - horizon)
        if len(origins) < 5:
            return np.zeros((0, horizon))
        actual = recent[origins[:, None] + np.arange(1, horizon + 1)[None, :]]
        return np.log1p(np.maximum(actual, 0.0)) - np.log1p(np.maximum(recent[origins], 0.0))[:, None]

    def _baseline_name(self, n: int) -> str:
        if self.model in BASELINES and self.model.startswith("seasonal"):
            season = DAY_S if self.model.endswith("day") else WEEK_S
            return self.model if n >= seasonal_period(self.window_s, season) else "last_value"
        if self.model in BASELINES:
            return self.model
        return "ewma" if n >= 2 else "last_value"
