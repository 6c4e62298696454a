"""Token density for the PreServe scaler's long-term loop: observed online, or read from the trace (oracle).

Both answer one question: the highest prompt- and generated-token rate (tokens/s) expected over
``[now, now + horizon]``, window by window. The online one aggregates tumbling windows in event time
(prompt tokens by arrival, generated tokens by completion, as the paper's density agent does) and asks
``models.workload.OnlineForecaster`` for the next windows; the oracle reads the trace's own future.
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

__all__ = ["DensityForecast", "OnlineDensity", "OracleDensity", "online_forecaster"]


class DensityForecast(ABC):
    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s

    def observe_arrival(self, now: float, prompt_tokens: int) -> None:  # noqa: B027
        """An arrival (online: counted in its window)."""

    def observe_completion(self, now: float, output_tokens: int) -> None:  # noqa: B027
        """A completion (online: its generated tokens counted in the window it completes in)."""

    @abstractmethod
    def peak_rates(self, now: float, horizon_s: float) -> tuple[float, float]:
        """Highest (prompt tokens/s, generated tokens/s) over windows overlapping ``[now, now + horizon]``."""


class OracleDensity(DensityForecast):
    """The true future density of the trace (ablation: a perfect long-term forecast)."""

    def __init__(self, window_s: float) -> None:
        super().__init__(window_s)
        self._attached = False
        self._t: list[float] = []
        self._p: list[float] = [0.0]
        self._o: list[float] = [0.0]

    def attach(self, arrivals: Sequence[tuple[float, int, int]]) -> None:
        rows = sorted(arrivals)
        self._attached = True
        self._t = [r[0] for r in rows]
        self._p = [0.0, *accumulate(float(r[1]) for r in rows)]
        self._o = [0.0, *accumulate(float(r[2]) for r in rows)]

    def _sums(self, t0: float, t1: float) -> tuple[float, float]:
        i, j = bisect.bisect_left(self._t, t0), bisect.bisect_left(self._t, t1)
        return self._p[j] - self._p[i], self._o[j] - self._o[i]

    def peak_rates(self, now: float, horizon_s: float) -> tuple[float, float]:
        if not self._attached:
            raise RuntimeError("oracle forecast without attach_oracle(): the harness must pass the trace")
        best_p = best_o = 0.0
        for k in range(max(1, math.ceil(horizon_s / self.window_s))):
            p, o = self._sums(now + k * self.window_s, now + (k + 1) * self.window_s)
            best_p, best_o = max(best_p, p / self.window_s), max(best_o, o / self.window_s)
        return best_p, best_o


ForecasterFactory = Callable[[float], Any]


def online_forecaster(model: str = "mlstm") -> ForecasterFactory:
    """Factory of ``models.workload.OnlineForecaster`` (mLSTM; EWMA until it has enough windows to train)."""
    def build(window_s: float) -> Any:
        from models.workload import OnlineForecaster  # torch-backed; imported only when the scaler is built

        return OnlineForecaster(window_s=window_s, model=model)
    return build


class OnlineDensity(DensityForecast):
    """Tumbling windows of observed density, fed to an online forecaster as each window closes.

    :param factory: builds the forecaster from ``window_s`` (tests inject a simple one); it must offer
        ``observe(window_start, requests, prompt_tokens, output_tokens)`` and ``forecast(horizon)``.
    """

    def __init__(self, window_s: float, factory: ForecasterFactory | None = None) -> None:
        super().__init__(window_s)
        self.forecaster = (factory or online_forecaster())(window_s)
        self._origin: float | None = None
        self._window = 0  # index of the open window
        self._acc = [0, 0, 0]  # requests, prompt tokens, output tokens of the open window
        self._last_rates = (0.0, 0.0)  # last closed window, used until the forecaster has an opinion

    def _roll(self, now: float) -> None:
        if self._origin is None:
            self._origin = now
        w = math.floor((now - self._origin) / self.window_s)
        while self._window < w:
            start = self._origin + self._window * self.window_s
            n, p, o = self._acc
            self.forecaster.observe(start, n, p, o)
            self._last_rates = (p / self.window_s, o / self.window_s)
            self._acc = [0, 0, 0]
            self._window += 1

    def observe_arrival(self, now: float, prompt_tokens: int) -> None:
        self._roll(now)
        self._acc[0] += 1
        self._acc[1] += int(prompt_tokens)

    def observe_completion(self, now: float, output_tokens: int) -> None:
        self._roll(now)
        self._acc[2] += int(output_tokens)

    def peak_rates(self, now: float, horizon_s: float) -> tuple[float, float]:
        self._roll(now)
        if self._origin is None or self._window == 0:
            return self._last_rates  # no window closed yet: the short-term loop covers the start
        last_needed = math.floor((now + horizon_s - self._origin) / self.window_s)
        steps = max(1, last_needed - self._window + 1)
        fc = self.forecaster.forecast(steps)
        prompt = _series(fc, "prompt_tokens")
        output = _series(fc, "output_tokens")
        if not prompt or not output:
            return self._last_rates
        return max(prompt) / self.window_s, max(output) / self.window_s


def _series(fc: Any, target: str) -> list[float]:
    """The forecast mean per step for ``target`` (tokens per window); ``ForecastOut`` or a plain dict."""
    if fc is None:
        return []
    means = getattr(fc, "mean", None)
    if isinstance(means, dict):  # models.workload.ForecastOut
        series = means.get(target)
    else:
        entry = fc.get(target) if isinstance(fc, dict) else None
        series = entry.get("mean") if isinstance(entry, dict) else entry
    return [max(0.0, float(v)) for v in series] if series is not None else []
