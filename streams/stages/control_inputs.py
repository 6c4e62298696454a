"""The inputs of the control agents, their one canonical order, and the counts that make a decision replayable.

A route or scale decision depends on the requests, instance events, completions and forecasts of its service
that were applied before it. Both agents apply the fleet's events in one canonical order — by event time, then
kind (a completion before an instance event before an arrival before a forecast at one instant, the simulator's
order: step ends free capacity before arrivals are placed), then arrival order within a topic — and every
decision records how many inputs of each kind it had applied (:class:`InputCounts`). Replaying the archived
topics through fresh agent state (``streams.stages.decision_replay``) then reproduces each live decision exactly.
"""

from __future__ import annotations

from streams.policies.fleet_rules import served_prompt
from streams.policies.fleet_view import CompletionInfo, ForecastInfo, RequestInfo
from streams.records import Completion, EventRecord, Forecast, InstanceEvent, PredictedRequest

__all__ = ["INPUT_KINDS", "input_kind", "order_key", "InputCounts", "request_info", "completion_info",
           "forecast_info"]

INPUT_KINDS = ("completions", "instance-events", "predicted-requests", "forecasts")  # priority at one instant
_PRIORITY = {Completion: 0, InstanceEvent: 1, PredictedRequest: 2, Forecast: 3}


def input_kind(rec: EventRecord) -> str:
    return INPUT_KINDS[_PRIORITY[type(rec)]]


def order_key(rec: EventRecord, seq: int) -> tuple[float, int, int]:
    """The canonical order: event time, kind priority, then ``seq`` (arrival order of the input)."""
    return (rec.ts, _PRIORITY[type(rec)], seq)


def request_info(req: PredictedRequest, max_model_len: int) -> RequestInfo:
    """What a policy sees of a request: the prompt length the engine serves (as the simulator shows it)."""
    return RequestInfo(req.request_id, req.service, req.ts, served_prompt(req.prompt_tokens, max_model_len),
                       req.predicted_tokens, req.predicted_p90_tokens)


def completion_info(c: Completion) -> CompletionInfo:
    return CompletionInfo(c.request_id, c.instance_id, c.arrival_ts, c.ts, c.prompt_tokens, c.output_tokens, c.ttft_s)


def forecast_info(fc: Forecast) -> ForecastInfo:
    """The policy-side view of a `forecasts` record (the one conversion, used live and offline)."""
    return ForecastInfo(fc.target, fc.first_window_start, fc.window_s, tuple(fc.mean), tuple(fc.upper), fc.model)


class InputCounts:
    """How many inputs of each kind a service's control state has applied (a decision's provenance)."""

    def __init__(self) -> None:
        self.n = dict.fromkeys(INPUT_KINDS, 0)

    def add(self, rec: EventRecord) -> None:
        self.n[input_kind(rec)] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.n)
