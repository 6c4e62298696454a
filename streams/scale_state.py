"""Scaling state of one service, driven by the `scale` agent (pure: explicit event time, no I/O).

The scaler object comes from the policy registry (the one the offline simulator drives) and is polled every
``scaler.interval_s`` of *event* time, as the simulator polls it.

Why arrivals wait for the fleet: the instance managers run a little behind the replay (see
``fleet/live/event_clock.py``), so completions and instance statuses reach this agent later, in event time,
than the arrivals they belong with. A scaler fed arrivals at once and completions late believes more work is in
flight than there is and scales up for nothing. So arrivals and forecasts are held until the fleet's own events
(which carry the fleet's event time, in order per service) pass them, and everything is applied in event-time
order: the scaler sees what the offline simulator shows it, only later in wall time. The managers send a status
per instance at least every heartbeat, so held arrivals never wait long.
"""

from __future__ import annotations

import heapq
import itertools

from streams.fleet_state import FleetState
from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import CompletionInfo, ForecastInfo, RequestInfo
from streams.records import Completion, EventRecord, Forecast, InstanceEvent, PredictedRequest, ScaleCommand

__all__ = ["ServiceScaler", "BOOTSTRAP_REASON", "forecast_info"]

# A service's first command, like the offline simulator's ``initial_instances`` (warm at t=0): not a scaler
# decision (no freeze), and the instance managers start these instances ready and ignore it once the service
# has instances (a scale agent that restarts must not shrink a running fleet).
BOOTSTRAP_REASON = "bootstrap: initial instances"
MAX_HELD = 1_000_000  # held arrivals beyond this are applied without waiting (a fleet that went silent)


def forecast_info(fc: Forecast) -> ForecastInfo:
    """The policy-side view of a `forecasts` record (the one conversion, used live and offline)."""
    return ForecastInfo(fc.target, fc.first_window_start, fc.window_s, tuple(fc.mean), tuple(fc.upper), fc.model)


class ServiceScaler:
    """Scales one service.

    :param service: the service name.
    :param scaler: the policy object (from the registry).
    :param policy: label written into every command.
    :param fleet: the service's fleet view (rebuilt from instance events).
    :param initial_instances: instances the service starts with (warm), as the offline simulator's.
    :param warmup_s: the scaler is first polled ``max(interval_s, warmup_s)`` after the service's first arrival,
        as the simulator first polls it that long after the start of the trace.
    """

    def __init__(self, service: str, scaler: BaseScaler, policy: str, fleet: FleetState,
                 initial_instances: int = 1, warmup_s: float = 0.0) -> None:
        self.service = service
        self.scaler = scaler
        self.policy = policy
        self.fleet = fleet
        self.initial_instances = initial_instances
        self.warmup_s = warmup_s
        self._origin: float | None = None
        self.now: float | None = None
        self._bootstrapped = False
        self._next_tick: float | None = None
        self._seen_arrivals: set[str] = set()
        self._held: list[tuple[float, int, EventRecord]] = []
        self._seq = itertools.count()

    def on_request(self, req: PredictedRequest) -> list[ScaleCommand]:
        if req.request_id in self._seen_arrivals:  # a redelivered arrival must not count twice
            return []
        self._seen_arrivals.add(req.request_id)
        out = self._bootstrap(req.ts)
        self._hold(req)
        return out

    def on_forecast(self, fc: Forecast) -> list[ScaleCommand]:
        self._hold(fc)
        return []

    def on_completion(self, c: Completion) -> list[ScaleCommand]:
        out = self._release(c.ts)
        out += self._tick(c.ts)
        self.fleet.note_completion(c)
        self.scaler.observe_completion(CompletionInfo(c.request_id, c.instance_id, c.arrival_ts, c.ts,
                                                      c.prompt_tokens, c.output_tokens, c.ttft_s), c.ts)
        self._seen_arrivals.discard(c.request_id)
        return out

    def on_instance_event(self, ev: InstanceEvent) -> list[ScaleCommand]:
        out = self._release(ev.ts)
        self.fleet.apply(ev)
        return out + self._tick(ev.ts)

    def _hold(self, rec: EventRecord) -> None:
        heapq.heappush(self._held, (rec.ts, next(self._seq), rec))
        if len(self._held) > MAX_HELD:
            self._apply(heapq.heappop(self._held)[2])

    def _release(self, watermark: float) -> list[ScaleCommand]:
        """Apply held arrivals/forecasts up to the fleet's event time, in order, polling the scaler between."""
        out: list[ScaleCommand] = []
        while self._held and self._held[0][0] <= watermark:
            out += self._apply(heapq.heappop(self._held)[2])
        return out

    def _apply(self, rec: EventRecord) -> list[ScaleCommand]:
        out = self._tick(rec.ts)
        if isinstance(rec, PredictedRequest):
            info = RequestInfo(rec.request_id, rec.service, rec.ts, rec.prompt_tokens, rec.predicted_tokens,
                               rec.predicted_p90_tokens)
            self.scaler.observe_arrival(info, rec.ts)
        elif isinstance(rec, Forecast):
            self.scaler.observe_forecast(forecast_info(rec), rec.ts)
        return out

    def _bootstrap(self, ts: float) -> list[ScaleCommand]:
        """The service's first arrival starts its initial instances at once (the fleet has none to report)."""
        if self._bootstrapped:
            return []
        self._bootstrapped = True
        self._origin = ts
        if self.initial_instances > 0 and not self.fleet.instances:
            self.now = ts if self.now is None else max(self.now, ts)
            return [self._command(self.initial_instances, BOOTSTRAP_REASON, bootstrap=True)]
        return []

    def _tick(self, ts: float) -> list[ScaleCommand]:
        """Poll the scaler at every ``interval_s`` boundary the event clock crossed (once per call)."""
        if self.now is None or ts > self.now:
            self.now = ts
        if not self.fleet.instances and self.initial_instances > 0:
            return []  # the bootstrap's instances are not visible yet: deciding now would double them
        if self._next_tick is None:
            origin = self.now if self._origin is None else self._origin
            self._next_tick = origin + max(self.scaler.interval_s, self.warmup_s)
        if self.now < self._next_tick:
            return []
        tick = self._next_tick
        step = self.scaler.interval_s
        self._next_tick = tick + step * (1 + int((self.now - tick) // step))
        decision = self.scaler.decide(self.fleet.view, self.now)
        if decision is None:
            return []
        cmd = self._command(decision.target_instances, decision.reason)
        self.fleet.expect(decision.target_instances, self.now)
        return [cmd]

    def _command(self, target: int, reason: str, bootstrap: bool = False) -> ScaleCommand:
        return ScaleCommand(ts=self.now or 0.0, service=self.service, target_instances=target,
                            current_instances=self.fleet.view.provisioned, policy=self.policy, reason=reason[:500],
                            bootstrap=bootstrap)
