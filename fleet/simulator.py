"""Discrete-event simulation of one service's fleet: arrivals -> router -> instances, a scaler on a timer.

Events are processed in the one order of ``fleet.sim_types`` — ``(time, EventType priority, seq)``. Arrivals
are read in order from the workload arrays (they never enter the heap, which saves a push and a pop per
request); an arrival at time ``t`` sorts as ``(t, ARRIVAL, index)`` against the heap's head. An instance has at
most one live STEP_END event (the end of its step or decode run in flight); when a new request shortens a
run, a new event is pushed and the old one recognised as stale by its version.

Requests wait at the gateway while no instance is READY and are routed, oldest first, when one becomes ready.
Scale-up starts instances (READY after the engine's cold start); scale-down first cancels starting instances
(newest first), then drains the least-loaded READY ones (newest first on ties); a draining instance finishes
its queue and stops. Instance-seconds run from the start request to the stop (or the end of the simulation).
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from fleet.engine_instance import EngineInstance
from fleet.forecast_feed import ForecastFeed
from fleet.itl import ItlHistogram
from fleet.pool import InstancePool
from fleet.prediction_feedback import PredictionFeedback
from fleet.sim_inputs import SimConfig, SimResult, Workload
from fleet.sim_types import DropReason, EngineEventKind, EventType, SimRequest
from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_rules import scale_down_victims, served_lengths
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, RequestInfo, ScaleDecision

__all__ = ["Simulator", "simulate"]

_STEP, _READY, _TICK, _SAMPLE = EventType.STEP_END, EventType.INSTANCE_READY, EventType.SCALER_TICK, EventType.SAMPLE
_ARRIVAL_PRIO = int(EventType.ARRIVAL)
_STATE_CODE = {InstanceState.STARTING: 0, InstanceState.READY: 1, InstanceState.DRAINING: 2,
               InstanceState.STOPPED: 3}


class Simulator:
    """One run of one (router, scaler) pair over a workload. Use :func:`simulate` or :meth:`run`.

    :param progress: called with the number of requests finished or dropped so far (progress bars).
    """

    def __init__(self, workload: Workload, config: SimConfig, router: BaseRouter, scaler: BaseScaler,
                 progress: Callable[[int], None] | None = None, pool: InstancePool | None = None) -> None:
        self.w = workload
        self.cfg = config
        self.router = router
        self.scaler = scaler
        self.progress = progress
        n = len(workload)
        self.first_token = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.preemptions = np.zeros(n, np.int32)
        self.instance_of = np.full(n, -1, np.int32)
        self.prompt = workload.prompt_tokens.astype(np.int64).copy()
        self.output = workload.output_tokens.astype(np.int64).copy()
        self.drop_reason: list[str | None] = [None] * n
        self.truncated = 0
        self.done = 0
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.engines: list[EngineInstance] = []  # every instance ever started, by index
        self.itl = ItlHistogram()  # inter-token gaps of every instance of the run
        self.by_id: dict[str, int] = {}
        self.live: list[int] = []  # indices of instances not stopped, in start order
        self.live_engines: list[EngineInstance] = []  # the same instances
        self.fleet = FleetView(workload.service, [], config.min_instances, config.max_instances,
                               config.engine.cold_start_s)
        self.meta: list[dict[str, object]] = []
        self.wake: list[float] = []  # scheduled STEP_END time per instance
        self.gateway: deque[tuple[SimRequest, RequestInfo]] = deque()
        self.scale_actions: list[dict[str, object]] = []
        self.fleet_samples: list[tuple[float, ...]] = []
        self.instance_samples: list[tuple[float, ...]] = []
        self.ctrl = 0.0
        self.now = 0.0
        self.pool = pool  # GPUs shared with other services' simulators (None: this fleet's own max_instances)
        self.pool_deficit = 0  # instances the scaler wants that the full pool has not granted yet
        self.finished = False
        self._arrivals: list[float] = []
        self._next = 0
        self._horizon = 0.0
        self._wall = 0.0
        # the density -> forecast stages, only for a scaler that reads forecasts (they cost a forecaster)
        self.forecast_feed = (ForecastFeed(config.density_window_s, config.density_grace_s, config.forecast_horizon,
                                           config.forecast_model) if scaler.wants_forecasts else None)
        # the predict stage's online correction of length predictions from completions, as live
        self.lengths = (PredictionFeedback(workload, config.predictor_online_window)
                        if config.predictor_online_window > 0 and workload.predicted is not None
                        and workload.predictor_source not in ("oracle", "noisy-oracle") else None)

    # ---- event plumbing ----------------------------------------------------------------------------------
    def _push(self, t: float, kind: EventType, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, int(kind), self.seq, payload))

    def _reschedule(self, idx: int) -> None:
        t = self.engines[idx].busy_until
        if t != self.wake[idx]:
            self.wake[idx] = t
            if t != math.inf:
                self._push(t, _STEP, (idx, t))

    def run(self) -> SimResult:
        """Simulate to the end (every request finished or dropped, or the horizon passed)."""
        self.begin()
        self.advance()
        return self.finish_run()

    def begin(self) -> None:
        """The warm fleet at t=0 and the first scaler poll and sample; then :meth:`advance` until it returns True."""
        self._wall = time.perf_counter()
        cfg = self.cfg
        if self.pool is not None:
            self.pool.occupy(cfg.initial_instances)
        for _ in range(cfg.initial_instances):
            self._start_instance(0.0, ready=True)
        self._push(max(self.scaler.interval_s, cfg.warmup_s), _TICK, None)  # first poll: see SimConfig
        self._push(0.0, _SAMPLE, None)
        self._arrivals = self.w.arrival.tolist()
        n = len(self._arrivals)
        self._horizon = (self._arrivals[-1] if n else 0.0) + cfg.horizon_s
        self._next = 0  # next arrival to read

    def next_time(self) -> float:
        """Time of the next event (``inf`` when finished)."""
        if self.finished:
            return math.inf
        i, heap = self._next, self.heap
        if i < len(self._arrivals) and (not heap or (self._arrivals[i], _ARRIVAL_PRIO) < heap[0][:2]):
            return self._arrivals[i]
        return heap[0][0] if heap else math.inf

    def advance(self, until: float = math.inf) -> bool:
        """Process events in order while their time is below ``until``. Returns True once the run is over, False
        when it paused there (see :func:`fleet.pool_simulator.simulate_pool`)."""
        arrivals = self._arrivals
        n = len(arrivals)
        i = self._next
        heap = self.heap
        horizon = self._horizon
        while self.done < n:
            if i < n and (not heap or (arrivals[i], _ARRIVAL_PRIO) < heap[0][:2]):
                if arrivals[i] >= until:
                    self._next = i
                    return False
                self.now = arrivals[i]
                self._arrival(i)
                i += 1
                continue
            if not heap:
                break
            if heap[0][0] >= until:
                self._next = i
                return False
            t, kind, _, payload = heapq.heappop(heap)
            if t > horizon:
                break
            self.now = t
            if kind == _STEP:
                idx: int
                at: float
                idx, at = payload  # type: ignore[misc]
                if self.wake[idx] == at:
                    self.wake[idx] = math.inf
                    self._step_end(idx, t)
            elif kind == _READY:
                self._ready(payload, t)  # type: ignore[arg-type]
            elif kind == _TICK:
                self._tick(t)
            else:
                self._sample(t)
        self._next = i
        self.finished = True
        return True

    def finish_run(self, end: float | None = None) -> SimResult:
        """Drop what is unfinished and build the result; ``end``: when instances still up stop being counted
        (default: this run's last event or completion; a shared pool passes the whole day's end)."""
        self._drop_unfinished()
        if self.progress is not None:
            self.progress(self.done)
        return self._result(time.perf_counter() - self._wall, end)

    # ---- handlers ----------------------------------------------------------------------------------------
    def _arrival(self, i: int) -> None:
        now = self.now
        prompt, output, truncated = served_lengths(int(self.prompt[i]), int(self.output[i]),
                                                   self.cfg.engine.max_model_len)
        if truncated:
            if self.cfg.overlength == "drop":
                self._drop(i, DropReason.PROMPT_TOO_LONG.value)
                return
            self.truncated += 1
        self.prompt[i], self.output[i] = prompt, output
        w = self.w
        if self.lengths is not None:
            pred, p90 = self.lengths.predict(i)
        else:
            pred = float(w.predicted[i]) if w.predicted is not None else 0.0
            p90 = float(w.predicted_p90[i]) if w.predicted_p90 is not None else pred
        info = RequestInfo(w.request_ids[i], w.service, now, prompt, pred, p90)
        req = SimRequest(i, info.request_id, now, prompt, output, pred)
        t = time.perf_counter()
        self.scaler.observe_arrival(info, now)
        self.ctrl += time.perf_counter() - t
        if self.gateway or not self._route(req, info):
            self.gateway.append((req, info))

    def _route(self, req: SimRequest, info: RequestInfo) -> bool:
        now = self.now
        self._refresh_views()
        t = time.perf_counter()
        try:
            choice = self.router.choose(info, self.fleet, now)
        except NoReadyInstance:
            self.ctrl += time.perf_counter() - t
            return False
        self.router.on_routed(info, choice.instance_id, now)
        self.ctrl += time.perf_counter() - t
        idx = self.by_id[choice.instance_id]
        eng = self.engines[idx]
        if eng.view.state is not InstanceState.READY:
            raise RuntimeError(f"router {self.router.name!r} chose {choice.instance_id} in state {eng.view.state}")
        req.instance = idx
        self.instance_of[req.idx] = idx
        eng.add_request(req, now)
        self._reschedule(idx)
        return True

    def _step_end(self, idx: int, t: float) -> None:
        eng = self.engines[idx]
        for ev in eng.advance(t):
            if ev.kind == EngineEventKind.FINISHED:
                self._complete(ev.request, eng, t)
        self._reschedule(idx)
        if eng.view.state is InstanceState.DRAINING and eng.idle():
            self._stop(idx, t)

    def _complete(self, req: SimRequest, eng: EngineInstance, t: float) -> None:
        i = req.idx
        self.first_token[i] = req.first_token_s
        self.finish[i] = t
        self.preemptions[i] = req.preemptions
        self.done += 1
        if self.progress is not None and not self.done % 1000:
            self.progress(self.done)
        info = CompletionInfo(req.request_id, eng.view.instance_id, req.arrival, t, req.prompt, req.output,
                              req.first_token_s - req.arrival)
        c = time.perf_counter()
        self.router.on_completed(info, t)
        self.scaler.observe_completion(info, t)
        if self.lengths is not None:
            self.lengths.complete(req.request_id, req.output)
        if self.forecast_feed is not None:
            for fc in self.forecast_feed.on_completion(self.w.service, t, req.prompt, req.output):
                if fc.target in self.scaler.forecast_targets:
                    self.scaler.observe_forecast(fc, t)
        self.ctrl += time.perf_counter() - c

    def _ready(self, idx: int, t: float) -> None:
        eng = self.engines[idx]
        if eng.view.state is not InstanceState.STARTING:
            return  # cancelled while starting
        eng.view.state = InstanceState.READY
        eng.view.ready_at = t
        self.meta[idx]["ready_at"] = t
        while self.gateway:
            req, info = self.gateway[0]
            if not self._route(req, info):
                break
            self.gateway.popleft()

    def _tick(self, t: float) -> None:
        self._refresh_views()
        c = time.perf_counter()
        decision = self.scaler.decide(self.fleet, t)
        self.ctrl += time.perf_counter() - c
        if decision is not None:
            self._apply(decision, t)
        self._push(t + self.scaler.interval_s, _TICK, None)

    def _sample(self, t: float) -> None:
        counts = [0, 0, 0, 0]
        for idx in self.live:
            v = self.engines[idx].refresh_view(t)
            code = _STATE_CODE[v.state]
            counts[code] += 1
            self.instance_samples.append((t, idx, code, v.running, v.waiting, v.kv_utilization))
        in_system = len(self.gateway) + sum(self.engines[i].running + len(self.engines[i].waiting)
                                                       for i in self.live)
        self.fleet_samples.append((t, counts[1], counts[0], counts[2], len(self.gateway), in_system))
        self._push(t + self.cfg.sample_interval_s, _SAMPLE, None)

    # ---- fleet changes -----------------------------------------------------------------------------------
    def _refresh_views(self) -> None:
        now = self.now
        for eng in self.live_engines:
            eng.refresh_view(now)

    def _start_instance(self, t: float, ready: bool) -> int:
        idx = len(self.engines)
        eng = EngineInstance(self.cfg.engine, f"i{idx}", check_invariants=self.cfg.check_invariants, itl=self.itl)
        eng.view.start_requested_at = t
        self.engines.append(eng)
        self.by_id[eng.view.instance_id] = idx
        self.wake.append(math.inf)
        self.meta.append({"instance_id": eng.view.instance_id, "start_requested_at": t, "ready_at": None,
                          "stopped_at": None})
        self.live.append(idx)
        self.live_engines.append(eng)
        self.fleet.instances.append(eng.view)
        if ready:
            eng.view.state = InstanceState.READY
            eng.view.ready_at = t
            self.meta[idx]["ready_at"] = t
        else:
            self._push(t + self.cfg.engine.cold_start_s, _READY, idx)
        return idx

    def _apply(self, decision: ScaleDecision, t: float) -> None:
        states = [self.engines[i].view.state for i in self.live]
        current = sum(1 for s in states if s in (InstanceState.READY, InstanceState.STARTING))
        target = decision.target_instances
        self.scale_actions.append({"t": t, "from": current, "to": target, "reason": decision.reason})
        up = target - current
        if self.pool is not None:  # a full pool grants what it can now; the rest waits for a stop elsewhere
            granted = self.pool.take(up) if up > 0 else 0
            self.pool_deficit = self.fleet.pending = max(0, up - granted)
            self.pool.want(self, self.pool_deficit, t)
            up = granted
        for _ in range(up):
            self._start_instance(t, ready=False)
        if target >= current:
            return
        provisioned = [i for i in self.live if self.engines[i].view.state in (InstanceState.STARTING,
                                                                            InstanceState.READY)]
        victims = scale_down_victims(provisioned, current - target,
                                     lambda i: self.engines[i].view.state is InstanceState.STARTING,
                                     lambda i: self.engines[i].running + len(self.engines[i].waiting))
        for idx in victims:
            eng = self.engines[idx]
            if eng.view.state is InstanceState.STARTING or eng.idle():
                self._stop(idx, t)
            else:
                eng.view.state = InstanceState.DRAINING

    def grant(self, count: int, t: float) -> None:
        """The shared pool gives this service ``count`` of the instances its scaler asked for at ``t``."""
        self.pool_deficit -= count
        self.fleet.pending = self.pool_deficit
        for _ in range(count):
            self._start_instance(t, ready=False)

    def _stop(self, idx: int, t: float) -> None:
        eng = self.engines[idx]
        eng.view.state = InstanceState.STOPPED
        self.meta[idx]["stopped_at"] = t
        self.live.remove(idx)
        self.live_engines = [self.engines[i] for i in self.live]
        self.fleet.instances = [e.view for e in self.live_engines]
        c = time.perf_counter()
        self.router.on_instance_removed(eng.view.instance_id, t)
        self.ctrl += time.perf_counter() - c
        if self.pool is not None:
            self.pool.release(t)

    # ---- accounting --------------------------------------------------------------------------------------
    def _drop(self, i: int, reason: str) -> None:
        self.drop_reason[i] = reason
        self.done += 1

    def _drop_unfinished(self) -> None:
        """After the horizon: every request neither finished nor dropped is dropped with the reason why."""
        for req, _ in self.gateway:
            self._drop(req.idx, DropReason.NO_INSTANCE.value)
        self.gateway.clear()
        for i in np.flatnonzero(np.isnan(self.finish)).tolist():
            if self.drop_reason[i] is None:
                self._drop(i, DropReason.HORIZON.value)

    def end_time(self) -> float:
        """This run's last event or completion, whichever is later."""
        finished = self.finish[~np.isnan(self.finish)]
        return max(self.now, float(finished.max())) if finished.size else self.now

    def _result(self, wall_s: float, end: float | None = None) -> SimResult:
        if end is None:
            end = self.end_time()
        for m in self.meta:
            if m["stopped_at"] is None:
                m["end_at"] = end
        return SimResult(
            arrival=self.w.arrival, prompt_tokens=self.prompt, output_tokens=self.output,
            first_token=self.first_token, finish=self.finish, preemptions=self.preemptions,
            instance=self.instance_of, drop_reason=self.drop_reason, truncated=self.truncated,
            instances=self.meta, scale_actions=self.scale_actions,
            fleet_samples=np.array(self.fleet_samples, dtype=np.float64).reshape(-1, 6),
            instance_samples=np.array(self.instance_samples, dtype=np.float64).reshape(-1, 6),
            end_time=end, control_cpu_s=self.ctrl, wall_s=wall_s, itl=self.itl)


def simulate(workload: Workload, config: SimConfig, router: BaseRouter, scaler: BaseScaler,
             progress: Callable[[int], None] | None = None) -> SimResult:
    """Run ``router`` + ``scaler`` over ``workload`` on a simulated fleet; see :class:`Simulator`."""
    return Simulator(workload, config, router, scaler, progress).run()
