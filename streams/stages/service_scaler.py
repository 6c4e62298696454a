"""Scaling state of one service, driven by the `scale` agent (pure: explicit event time, no I/O).

The scaler object comes from the policy registry (the one the offline simulator drives) and is polled every
``scaler.interval_s`` of *event* time, as the simulator polls it.

Why every input waits for the fleet: the instance managers run a little behind the replay (see
``fleet/live/event_clock.py``), so completions and instance statuses reach this agent later, in event time,
than the arrivals they belong with, and completions and instance events travel on two topics that Kafka does
not order against each other. So every input is held, and applied in the canonical order
(``streams.stages.control_inputs``) once the fleet's certified event time passes it: an instance event certifies its
``ts`` when the completions it says were published before it, and the requests it says the fleet had been
routed, have arrived. (A request that reached the fleet late — counted there as a late input — can still reach
this agent after the fleet's time passed it: the one case where a decision depends on timing.) The scaler then sees the inputs in
the same order whatever the wall-time interleaving, so its decisions are a function of the inputs alone (and
replay exactly from the archive). The managers send a status per instance at least every heartbeat, so held
inputs never wait long.
"""

from __future__ import annotations

import heapq
import itertools
import math

from streams.policies.base_scaler import BaseScaler
from streams.policies.density_windows import DensityAccumulator
from streams.records import Completion, EventRecord, Forecast, InstanceEvent, PredictedRequest, ScaleCommand
from streams.stages.control_inputs import InputCounts, completion_info, forecast_info, order_key, request_info
from streams.stages.fleet_state import FleetState

__all__ = ["ServiceScaler", "BOOTSTRAP_REASON"]

# A service's first command, like the offline simulator's ``initial_instances`` (warm at t=0): not a scaler
# decision (no freeze), and the instance managers start these instances ready and ignore it once the service
# has instances (a scale agent that restarts must not shrink a running fleet).
BOOTSTRAP_REASON = "bootstrap: initial instances"
MAX_HELD = 1_000_000  # held arrivals beyond this are applied without waiting (a fleet that went silent)


class ServiceScaler:
    """Scales one service.

    :param service: the service name.
    :param scaler: the policy object (from the registry).
    :param policy: label written into every command.
    :param fleet: the service's fleet view (rebuilt from instance events).
    :param initial_instances: instances the service starts with (warm), as the offline simulator's.
    :param warmup_s: the scaler is first polled ``max(interval_s, warmup_s)`` after the service's first arrival,
        as the simulator first polls it that long after the start of the trace.
    :param density: ``(window_s, grace_s)`` of the density stage. For a scaler that reads forecasts, the scaler
        follows the density windows itself: a forecast takes effect at the event time its window closed (the
        completion that closed it), and inputs after that wait for it — at most one more window.
    """

    def __init__(self, service: str, scaler: BaseScaler, policy: str, fleet: FleetState,
                 initial_instances: int = 1, warmup_s: float = 0.0,
                 density: tuple[float, float] = (60.0, 30.0), max_model_len: int = 4096) -> None:
        self.service = service
        self.scaler = scaler
        self.policy = policy
        self.fleet = fleet
        self.initial_instances = initial_instances
        self.warmup_s = warmup_s
        self.max_model_len = max_model_len  # policies see the prompt length the engine serves, as offline
        self._origin: float | None = None
        self.now: float | None = None
        self._bootstrapped = False
        self._next_tick: float | None = None
        self._seen_arrivals: set[str] = set()
        self._held: list[tuple[tuple[float, int, int], EventRecord]] = []
        self._seq = itertools.count()
        self.applied = InputCounts()
        self.completions_received = 0
        self.watermark = float("-inf")  # every input up to here has arrived (see on_instance_event)
        self.requests_received = 0
        self._certify: list[tuple[int, int, float]] = []  # (completions, requests needed, event time certified)
        self.windows = DensityAccumulator(*density) if scaler.forecast_targets else None
        self._closed_at: dict[float, float] = {}  # density window end -> event time it closed at
        self._awaited: dict[float, set[str]] = {}  # closed window end -> forecast targets not yet in
        self._early: dict[float, list[Forecast]] = {}  # forecasts whose window close was not seen yet
        self.forecasts_given_up = 0

    def on_request(self, req: PredictedRequest) -> list[ScaleCommand]:
        if req.request_id in self._seen_arrivals:  # a redelivered arrival must not count twice
            return []
        self._seen_arrivals.add(req.request_id)
        self.requests_received += 1
        return self._bootstrap(req.ts) + self._hold(req) + self._release()

    def on_forecast(self, fc: Forecast) -> list[ScaleCommand]:
        if fc.target not in self.scaler.forecast_targets:
            return []  # a target this scaler does not read: not an input of its decisions
        closed = self._closed_at.get(fc.first_window_start)
        if closed is None:
            self._early.setdefault(fc.first_window_start, []).append(fc)
            return []
        self._awaited.get(fc.first_window_start, set()).discard(fc.target)
        return self._hold(fc, at=closed) + self._release()

    def on_completion(self, c: Completion) -> list[ScaleCommand]:
        self.completions_received += 1
        out = self._hold(c)
        if self.windows is not None:
            self.windows.add(c)
            self.windows.take_late()
            known = self.windows.watermark(c.service) or c.ts
            for w in self.windows.close_until():
                end = w.window_start + w.window_s
                self._closed_at[end] = known
                self._awaited[end] = set(self.scaler.forecast_targets)
                for fc in self._early.pop(end, []):
                    self._awaited[end].discard(fc.target)
                    out += self._hold(fc, at=known)
        return out + self._release()

    def on_instance_event(self, ev: InstanceEvent) -> list[ScaleCommand]:
        out = self._hold(ev)
        heapq.heappush(self._certify, (ev.completions_published or 0, ev.routes_applied or 0, ev.ts))
        return out + self._release()

    def _hold(self, rec: EventRecord, at: float | None = None) -> list[ScaleCommand]:
        key = order_key(rec, next(self._seq))
        if at is not None:  # a forecast: it takes effect when its density window closed
            key = (at, key[1], key[2])
        heapq.heappush(self._held, (key, rec))
        if len(self._held) > MAX_HELD:  # a fleet that went silent: apply the oldest without waiting
            return self._apply(heapq.heappop(self._held)[1])
        return []

    def _release(self) -> list[ScaleCommand]:
        """Apply held inputs up to the fleet's certified event time, in the canonical order, polling the scaler
        between them."""
        # an instance event certifies its ts once the completions and requests it counts have arrived here
        while self._certify and self._certify[0][0] <= self.completions_received:
            if self._certify[0][1] > self.requests_received:
                break
            self.watermark = max(self.watermark, heapq.heappop(self._certify)[2])
        out: list[ScaleCommand] = []
        while self._held and self._held[0][0][0] <= self.watermark and self._held[0][0] < self._forecast_cap():
            out += self._apply(heapq.heappop(self._held)[1])
        return out

    def _forecast_cap(self) -> tuple[float, float, float]:
        """Inputs from here on wait for the forecast of the oldest closed window that has not arrived (given up
        once the fleet is a whole window past it: a pipeline that runs no forecast stage must not stall)."""
        window_s = self.windows.window_s if self.windows is not None else 0.0
        cap = (math.inf, 0.0, 0.0)
        for end in sorted(self._awaited):
            closed = self._closed_at[end]
            if not self._awaited[end]:
                del self._awaited[end]
            elif self.watermark >= closed + window_s:
                del self._awaited[end]
                self.forecasts_given_up += 1
            else:
                cap = (closed, 3.0, -1.0)  # forecasts sort after everything else at that instant
                break
        self._forget_closed(window_s)
        return cap

    def _forget_closed(self, window_s: float) -> None:
        """Drop the close times of windows no forecast can still be waiting for (the dict grew by one entry per
        window forever). A forecast of a forgotten window arriving after all would wait in ``_early`` for a
        close that never comes again: harmless, and it cannot happen once the fleet is two windows past it."""
        horizon = self.watermark - 2 * window_s
        closed_at = self._closed_at  # in closing order: the oldest first, so this is O(1) per call amortised
        while closed_at:
            end, closed = next(iter(closed_at.items()))
            if closed >= horizon or end in self._awaited:
                return
            del closed_at[end]
            self._early.pop(end, None)

    def _apply(self, rec: EventRecord) -> list[ScaleCommand]:
        out = self._tick(rec.ts)
        self.applied.add(rec)
        if isinstance(rec, PredictedRequest):
            self.scaler.observe_arrival(request_info(rec, self.max_model_len), rec.ts)
        elif isinstance(rec, Forecast):
            self.scaler.observe_forecast(forecast_info(rec), rec.ts)
        elif isinstance(rec, Completion):
            self.fleet.note_completion(rec)
            self.scaler.observe_completion(completion_info(rec), rec.ts)
            self._seen_arrivals.discard(rec.request_id)
        elif isinstance(rec, InstanceEvent):
            self.fleet.apply(rec)
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
                            bootstrap=bootstrap, inputs=self.applied.snapshot())
