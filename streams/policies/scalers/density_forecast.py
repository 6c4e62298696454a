"""Token density for the PreServe scaler's long-term loop: the forecast stage's forecasts, or the trace (oracle).

Both answer one question: the highest prompt- and generated-token rate (tokens/s) expected over
``[now, now + horizon]``, window by window. The published one reads the forecasts of the pipeline's forecast
stage (density windows -> forecaster -> `forecasts`, the design's hierarchy); the oracle reads the trace's future.
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from itertools import accumulate

from streams.policies.fleet_view import ForecastInfo

__all__ = ["DensityForecast", "PublishedForecast", "OracleDensity"]


class DensityForecast(ABC):
    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s

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


class PublishedForecast(DensityForecast):
    """The forecasts published by the forecast stage (live: the `forecasts` topic; offline: the simulator runs
    the same density and forecast classes), kept per target. The scaler does not cut windows or forecast itself:
    the density stage's epoch-aligned windows are the only windows, the forecast stage the only forecaster.

    A forecast that no longer reaches the look-ahead is extended with its last window (persistence on the
    forecast). Before the first forecast arrives the answer is zero: the short-term loops cover the start.
    """

    def __init__(self, window_s: float) -> None:
        super().__init__(window_s)
        self.latest: dict[str, ForecastInfo] = {}

    def observe(self, forecast: ForecastInfo) -> None:
        held = self.latest.get(forecast.target)
        if held is None or forecast.first_window_start >= held.first_window_start:
            self.latest[forecast.target] = forecast

    def _peak(self, target: str, now: float, horizon_s: float) -> float:
        fc = self.latest.get(target)
        if fc is None or not fc.mean:
            return 0.0
        w = fc.window_s
        last = len(fc.mean) - 1
        lo = max(0, min(last, math.floor((now - fc.first_window_start) / w)))
        hi = max(lo, min(last, math.ceil((now + horizon_s - fc.first_window_start) / w) - 1))
        return max(max(0.0, float(v)) for v in fc.mean[lo:hi + 1]) / w

    def peak_rates(self, now: float, horizon_s: float) -> tuple[float, float]:
        return self._peak("prompt_tokens", now, horizon_s), self._peak("output_tokens", now, horizon_s)
