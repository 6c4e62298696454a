"""The offline driver of the control agents' decisions: archived inputs through fresh state, compared with the
live decisions one by one.

Each live decision records how many inputs of each kind it had applied (``streams.stages.control_inputs``). The
router is replayed at exactly those points: requests are fed at the input counts they were received at (their
own decision's, or ``queued_at_inputs`` for one that waited), and queued requests are drained where the live
agent drained them. The scaler needs no such help: it applies every input in the canonical order behind a
certified watermark, so feeding it the archived inputs reproduces its decisions (its recorded counts are then a
check). A mismatch means the live agent decided on something the archive does not hold: a late input, a
restart that dropped state, or a decision that depended on wall time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.pipeline_config import PipelineConfig
from streams.records import Completion, Forecast, InstanceEvent, PredictedRequest, RouteDecision, ScaleCommand
from streams.stages.control import RouteAgentState, ScaleAgentState

__all__ = ["ReplayReport", "replay_decisions"]


@dataclass
class ReplayReport:
    """Decisions compared and the mismatches found (each a line saying where and how)."""

    routes_compared: int = 0
    commands_compared: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def decision_mismatches(self) -> int:
        return len(self.mismatches)


def _by_service(records: Iterable[object]) -> dict[str, list[object]]:
    out: dict[str, list[object]] = defaultdict(list)
    for r in records:
        out[r.service].append(r)  # type: ignore[attr-defined]
    return out


class _RouterReplay:
    def __init__(self, state: RouteAgentState, service: str, requests: Sequence[PredictedRequest],
                 instance_events: Sequence[InstanceEvent], completions: Sequence[Completion]) -> None:
        self.svc = state.services.get(service)
        self.requests, self.events, self.completions = requests, instance_events, completions
        self.fed = {"predicted-requests": 0, "instance-events": 0, "completions": 0}
        self.produced: list[RouteDecision] = []

    def fleet_up_to(self, cut: dict[str, int]) -> None:
        for kind, items in (("instance-events", self.events), ("completions", self.completions)):
            while self.fed[kind] < min(cut.get(kind, 0), len(items)):
                self.svc.offer_fleet(items[self.fed[kind]])  # type: ignore[arg-type]
                self.fed[kind] += 1

    def request_up_to(self, index: int, receipt: dict[str, dict[str, int]]) -> None:
        while self.fed["predicted-requests"] <= index:
            req = self.requests[self.fed["predicted-requests"]]
            cut = receipt.get(req.request_id)
            if cut is not None:
                self.fleet_up_to(cut)
            self.produced += self.svc.on_request(req)
            self.fed["predicted-requests"] += 1


def _replay_routes(cfg: PipelineConfig, service: str, requests: list[PredictedRequest],
                   events: list[InstanceEvent], completions: list[Completion], live: list[RouteDecision],
                   report: ReplayReport) -> None:
    state = RouteAgentState(cfg)
    rep = _RouterReplay(state, service, requests, events, completions)
    position = {r.request_id: i for i, r in enumerate(requests)}
    receipt: dict[str, dict[str, int]] = {}
    for d in live:
        cut = d.queued_at_inputs or d.inputs
        if cut is not None:
            receipt[d.request_id] = cut
    for d in live:
        if d.inputs is None or d.request_id not in position:
            report.mismatches.append(f"{service}: route of {d.request_id} has no provenance or no archived request")
            continue
        if rep.fed["predicted-requests"] <= position[d.request_id]:
            rep.request_up_to(position[d.request_id], receipt)
        if d.queued_at_inputs is not None and d.request_id not in {p.request_id for p in rep.produced[-64:]}:
            # the live agent drained its queue here, with every request received by then queued behind
            rep.request_up_to(min(len(requests), d.inputs.get("predicted-requests", 0)) - 1, receipt)
            rep.fleet_up_to(d.inputs)
            rep.produced += rep.svc.drain()
    for k, d in enumerate(live):
        report.routes_compared += 1
        got = rep.produced[k] if k < len(rep.produced) else None
        if got is None or (got.request_id, got.instance_id) != (d.request_id, d.instance_id):
            seen = "nothing" if got is None else f"{got.request_id} -> {got.instance_id}"
            report.mismatches.append(f"{service}: route #{k} live {d.request_id} -> {d.instance_id}, replay {seen}")


def _replay_commands(cfg: PipelineConfig, service: str, requests: list[PredictedRequest],
                     events: list[InstanceEvent], completions: list[Completion], forecasts: list[Forecast],
                     live: list[ScaleCommand], report: ReplayReport) -> None:
    svc = ScaleAgentState(cfg).services.get(service)
    produced: list[ScaleCommand] = []
    for r in requests:
        produced += svc.on_request(r)
    for f in forecasts:
        produced += svc.on_forecast(f)
    for c in completions:
        produced += svc.on_completion(c)
    for e in events:
        produced += svc.on_instance_event(e)
    for k, d in enumerate(live):
        report.commands_compared += 1
        got = produced[k] if k < len(produced) else None
        want = (d.ts, d.target_instances, d.bootstrap, d.inputs)
        if got is None or (got.ts, got.target_instances, got.bootstrap, got.inputs) != want:
            seen = "nothing" if got is None else f"t={got.ts:.3f} -> {got.target_instances} after {got.inputs}"
            report.mismatches.append(f"{service}: scale command #{k} live t={d.ts:.3f} -> {d.target_instances} "
                                     f"after {d.inputs}, replay {seen}")
    last = live[-1].ts if live else float("-inf")
    for extra in produced[len(live):]:
        if extra.ts <= last:
            report.mismatches.append(f"{service}: replay scaled to {extra.target_instances} at t={extra.ts:.3f}, "
                                     "live did not")


def replay_decisions(cfg: PipelineConfig, requests: Sequence[PredictedRequest],
                     instance_events: Sequence[InstanceEvent], completions: Sequence[Completion],
                     forecasts: Sequence[Forecast], routes: Sequence[RouteDecision],
                     commands: Sequence[ScaleCommand]) -> ReplayReport:
    """Replay every service's archived inputs (each list in its topic's order) and compare with the live
    ``routes`` and ``commands`` (in their topics' order)."""
    report = ReplayReport()
    req, ev, comp, fc = (_by_service(x) for x in (requests, instance_events, completions, forecasts))
    live_routes, live_cmds = _by_service(routes), _by_service(commands)
    for service in sorted(set(live_routes) | set(live_cmds)):
        args = (req.get(service, []), ev.get(service, []), comp.get(service, []))
        _replay_routes(cfg, service, *args, live_routes.get(service, []), report)  # type: ignore[arg-type]
        _replay_commands(cfg, service, *args, fc.get(service, []),  # type: ignore[arg-type]
                         live_cmds.get(service, []), report)  # type: ignore[arg-type]
    return report
