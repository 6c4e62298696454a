"""State of the `forecast` agent: per-service :class:`OnlineForecaster` fed with closed density windows.

Each closed window yields one :class:`Forecast` per target (requests, prompt tokens, output tokens) for the
next ``horizon`` windows. A redelivered window replaces itself in the forecaster (no double count).
"""

from __future__ import annotations

from collections.abc import Callable

from streams.records import EventRecord, Forecast, TokenDensity
from streams.transport.messages import RawMessage, parse_messages

__all__ = ["ForecastAgentState"]


def _online(window_s: float, model: str):  # type: ignore[no-untyped-def]
    from models.workload import OnlineForecaster  # torch: imported when the first window arrives

    return OnlineForecaster(window_s, model=model)


class ForecastAgentState:
    """:param horizon: windows forecast ahead. :param model: forecaster model (``mlstm``, ``ewma``, ...).
    :param make: forecaster factory ``(window_s, model) -> OnlineForecaster`` (tests inject a light one)."""

    REPORTS = frozenset({"token-density"})

    def __init__(self, horizon: int, model: str = "mlstm", make: Callable[..., object] | None = None) -> None:
        self.horizon = horizon
        self.model = model
        self._make = make or _online
        self.forecasters: dict[str, object] = {}

    def on_window(self, w: TokenDensity) -> list[Forecast]:
        fc = self.forecasters.get(w.service)
        if fc is None:
            fc = self.forecasters[w.service] = self._make(w.window_s, self.model)
        fc.observe(w.window_start, w.requests, w.prompt_tokens, w.output_tokens)  # type: ignore[attr-defined]
        out = fc.forecast(self.horizon)  # type: ignore[attr-defined]
        quantiles = getattr(out, "quantiles", None) or {}
        models = getattr(out, "models", None) or {}
        return [Forecast(ts=w.ts, service=w.service, window_s=w.window_s, first_window_start=out.first_window_start,
                         target=target, mean=[max(0.0, float(x)) for x in out.mean[target]],
                         upper=[max(0.0, float(x)) for x in out.upper[target]], model=models.get(target, out.model),
                         quantiles={q: [max(0.0, float(x)) for x in v] for q, v in quantiles[target].items()}
                         if target in quantiles else None)
                for target in out.mean]

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        good, bad = parse_messages(msgs, now, self.REPORTS)
        out: list[EventRecord] = list(bad)
        for rec in good:
            if isinstance(rec, TokenDensity):
                out.extend(self.on_window(rec))
        return out
