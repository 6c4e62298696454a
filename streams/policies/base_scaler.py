"""Base class of every autoscaler. Pure: explicit ``now``, no clock, no I/O.

Bounds and the freeze after each action live here, once, so every scaler honours them the same way
(the design card: min/max instances, a freeze against flapping).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from streams.policies.fleet_view import CompletionInfo, FleetView, ForecastInfo, RequestInfo, ScaleDecision

__all__ = ["BaseScaler"]


class BaseScaler(ABC):
    """Decides the number of provisioned instances. Called every ``interval_s`` of event time.

    :param min_instances: never fewer provisioned instances than this.
    :param max_instances: never more.
    :param freeze_s: after an action, no further action for this long (event time).
    :param interval_s: how often the caller polls :meth:`decide`.
    """

    name: ClassVar[str] = ""
    # Constructor parameters that measure load dynamics in trace seconds: a compressed trace
    # (ControlSettings.time_scale) divides them, so a policy sees the same dynamics at any compression.
    TRACE_TIME_PARAMS: ClassVar[tuple[str, ...]] = ("freeze_s", "interval_s")

    def initial_instances(self, default: int) -> int:
        """Warm instances a service starts with (both drivers ask this); default: the settings' ``instances``."""
        return default

    @property
    def needs_history(self) -> bool:
        """Whether this scaler must be given the previous day (:meth:`attach_history`) before it runs."""
        return False

    @property
    def needs_future(self) -> bool:
        """Whether this scaler reads the trace's future (:meth:`attach_oracle`): offline only, refused live."""
        return False

    @property
    def forecast_targets(self) -> tuple[str, ...]:
        """The forecast targets :meth:`observe_forecast` reads (empty: none; drivers skip the others)."""
        return ()

    @property
    def wants_forecasts(self) -> bool:
        """Whether this scaler reads :meth:`observe_forecast` (drivers run the density -> forecast stages for it)."""
        return bool(self.forecast_targets)

    def __init__(self, min_instances: int = 1, max_instances: int = 8, freeze_s: float = 60.0,
                 interval_s: float = 5.0) -> None:
        if not 0 <= min_instances <= max_instances:
            raise ValueError(f"need 0 <= min_instances <= max_instances, got {min_instances}, {max_instances}")
        if freeze_s < 0 or interval_s <= 0:
            raise ValueError("freeze_s must be >= 0 and interval_s > 0")
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.freeze_s = freeze_s
        self.interval_s = interval_s
        self._last_action_at: float | None = None

    def decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        """The scaler's wish, clamped to bounds and suppressed during the freeze. None: no change."""
        current = fleet.provisioned
        if current < self.min_instances:
            return self._act(ScaleDecision(self.min_instances, f"below min_instances={self.min_instances}"), now)
        if current > self.max_instances:
            return self._act(ScaleDecision(self.max_instances, f"above max_instances={self.max_instances}"), now)
        if self._last_action_at is not None and now - self._last_action_at < self.freeze_s and not self._urgent(fleet, now):
            return None
        wish = self._decide(fleet, now)
        if wish is None:
            return None
        target = max(self.min_instances, min(self.max_instances, wish.target_instances))
        if target == current:
            return None
        return self._act(ScaleDecision(target, wish.reason, wish.details), now)

    def _act(self, decision: ScaleDecision, now: float) -> ScaleDecision:
        self._last_action_at = now
        return decision

    @abstractmethod
    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        """The policy proper: desired provisioned count and reason, or None for no opinion."""

    def _urgent(self, fleet: FleetView, now: float) -> bool:
        """True lets a decision through the freeze (emergency scale-up). Default: never."""
        return False

    def attach_oracle(self, arrivals: Sequence[tuple[float, int, int]]) -> None:  # noqa: B027
        """Offline ablations only: the whole trace as (arrival_s, prompt_tokens, output_tokens), so an
        oracle-forecast scaler can read the future. Called by the harness before a run; default: ignored."""

    def attach_history(self, arrivals: Sequence[tuple[float, int, int]]) -> None:  # noqa: B027
        """The previous day's requests as (arrival_s, prompt_tokens, output_tokens), in the same time base and
        time of day as the run (``preserve eval --history``). Default: ignored."""

    def observe_arrival(self, request: RequestInfo, now: float) -> None:  # noqa: B027
        """Observe an arriving request (default: nothing)."""

    def observe_completion(self, completion: CompletionInfo, now: float) -> None:  # noqa: B027
        """Observe a completion (default: nothing)."""

    def observe_forecast(self, forecast: ForecastInfo, now: float) -> None:  # noqa: B027
        """Observe a token-density forecast of the service (live: the `forecasts` topic; offline: the
        simulator's density -> forecast stages, the same classes). Default: nothing."""
