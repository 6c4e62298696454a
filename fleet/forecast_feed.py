"""The pipeline's density -> forecast stages, run offline inside the simulator for scalers that read forecasts.

The live hierarchy is completions -> [density] -> token-density -> [forecast] -> forecasts -> [scale]. Offline
the same classes run in the same order on the simulated completions: :class:`DensityAccumulator` (the density
agent's windows and grace) and :class:`ForecastAgentState` (the forecast agent's forecaster per service), so a
scaler sees the same kind of forecast at the same event time in both drivers. Refits run inline here (virtual
time costs nothing); the live forecast agent runs them off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams.policies.density_windows import DensityAccumulator
from streams.policies.fleet_view import ForecastInfo
from streams.stages.control_inputs import forecast_info
from streams.stages.forecast import ForecastAgentState

__all__ = ["ForecastFeed"]


@dataclass(frozen=True, slots=True)
class _Done:
    service: str
    ts: float
    prompt_tokens: int
    output_tokens: int


class ForecastFeed:
    """:param window_s: density window (event s). :param grace_s: late completions still counted.
    :param horizon: windows forecast ahead. :param model: forecaster model (``mlstm``, ``ewma``, ...).
    :param make: forecaster factory, as :class:`ForecastAgentState` takes it (tests inject a light one)."""

    def __init__(self, window_s: float, grace_s: float, horizon: int, model: str,
                 make: Callable[..., object] | None = None) -> None:
        self.density = DensityAccumulator(window_s, grace_s)
        self.stage = ForecastAgentState(horizon, model, make)

    def on_completion(self, service: str, t: float, prompt_tokens: int, output_tokens: int) -> list[ForecastInfo]:
        """Count one completion; the forecasts of every window that closed with it (usually none)."""
        self.density.add(_Done(service, t, prompt_tokens, output_tokens))
        self.density.take_late()
        return [forecast_info(fc) for window in self.density.close_until() for fc in self.stage.on_window(window)]
