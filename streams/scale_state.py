"""Scaling state of one service, driven by the `scale` agent (pure: explicit event time, no I/O).

The scaler object comes from the policy registry (the one the offline simulator drives). It is polled every
``scaler.interval_s`` of *event* time, as the simulator polls it; the agent's clock is the largest event time
seen on the service's streams (arrivals, completions, instance events, forecasts).
"""

from __future__ import annotations

from streams.fleet_state import FleetState
from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import CompletionInfo, RequestInfo
from streams.records import Completion, Forecast, InstanceEvent, PredictedRequest, ScaleCommand

__all__ = ["ServiceScaler", "BOOTSTRAP_REASON"]

# A service's first command, like the offline simulator's ``initial_instances`` (warm at t=0): not a scaler
# decision (no freeze), and the instance managers start these instances ready and ignore it once the service
# has instances (a scale agent that restarts must not shrink a running fleet).
BOOTSTRAP_REASON = "bootstrap: initial instances"


class ServiceScaler:
    """Scales one service.

    :param service: the service name.
    :param scaler: the policy object (from the registry).
    :param policy: label written into every command.
    :param fleet: the service's fleet view (rebuilt from instance events).
    :param initial_instances: instances the service starts with (warm), as the offline simulator's.
    """

    def __init__(self, service: str, scaler: BaseScaler, policy: str, fleet: FleetState,
                 initial_instances: int = 1) -> None:
        self.initial_instances = initial_instances
        self._bootstrapped = False
        self.service = service
        self.scaler = scaler
        self.policy = policy
        self.fleet = fleet
        self.now: float | None = None
        self._next_tick: float | None = None
        self._seen_arrivals: set[str] = set()

    def on_request(self, req: PredictedRequest) -> list[ScaleCommand]:
        if req.request_id in self._seen_arrivals:  # a redelivered arrival must not count twice
            return []
        self._seen_arrivals.add(req.request_id)
        out = self._tick(req.ts)
        info = RequestInfo(req.request_id, req.service, req.ts, req.prompt_tokens, req.predicted_tokens,
                           req.predicted_p90_tokens)
        self.scaler.observe_arrival(info, req.ts)
        return out

    def on_completion(self, c: Completion) -> list[ScaleCommand]:
        out = self._tick(c.ts)
        self.fleet.note_completion(c)
        self.scaler.observe_completion(CompletionInfo(c.request_id, c.instance_id, c.arrival_ts, c.ts,
                                                      c.prompt_tokens, c.output_tokens, c.ttft_s), c.ts)
        self._seen_arrivals.discard(c.request_id)
        return out

    def on_instance_event(self, ev: InstanceEvent) -> list[ScaleCommand]:
        self.fleet.apply(ev)
        return self._tick(ev.ts)

    def on_forecast(self, fc: Forecast) -> list[ScaleCommand]:
        observe = getattr(self.scaler, "observe_forecast", None)
        if callable(observe):
            observe(fc.target, fc.first_window_start, fc.window_s, list(fc.mean), list(fc.upper), fc.ts)
        return self._tick(fc.ts)

    def _tick(self, ts: float) -> list[ScaleCommand]:
        """Poll the scaler at every ``interval_s`` boundary the event clock crossed (once per call)."""
        if self.now is None or ts > self.now:
            self.now = ts
        if self._next_tick is None:
            self._next_tick = self.now  # first event: poll at once (brings the fleet to min_instances)
        if self.now < self._next_tick:
            return []
        if not self._bootstrapped:
            self._bootstrapped = True
            if self.initial_instances > 0 and not self.fleet.instances:
                return [self._command(self.initial_instances, BOOTSTRAP_REASON)]
        if not self.fleet.instances and self.initial_instances > 0:
            return []  # the bootstrap's instances are not visible yet: deciding now would double them
        tick = self._next_tick
        step = self.scaler.interval_s
        self._next_tick = tick + step * (1 + int((self.now - tick) // step))
        decision = self.scaler.decide(self.fleet.view, self.now)
        if decision is None:
            return []
        cmd = self._command(decision.target_instances, decision.reason)
        self.fleet.expect(decision.target_instances, self.now)
        return [cmd]

    def _command(self, target: int, reason: str) -> ScaleCommand:
        return ScaleCommand(ts=self.now or 0.0, service=self.service, target_instances=target,
                            current_instances=self.fleet.view.provisioned, policy=self.policy, reason=reason[:500])
