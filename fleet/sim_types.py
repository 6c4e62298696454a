"""Small types shared by the simulated instance, the event loop and the metrics.

The event order is defined here, once: events are processed by ``(time, EventType priority, seq)`` where
``seq`` comes from a per-simulation counter (``Simulator.seq``), never a class global. At one instant an
instance's step end comes first (its completions free KV blocks and its freed capacity is visible), then
instances that become ready, then arrivals (which may be routed to those instances), then the scaler (which
sees the arrivals), then the sampler (which records the state after everything else at that instant).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["EventType", "SimRequest", "EngineEvent", "EngineEventKind", "DropReason",
           "event_key"]


class EventType(enum.IntEnum):
    """Kinds of simulation events; the value is the priority among events at the same time (low first)."""

    STEP_END = 0
    INSTANCE_READY = 1
    ARRIVAL = 2
    SCALER_TICK = 3
    SAMPLE = 4


def event_key(time: float, kind: EventType, seq: int) -> tuple[float, int, int]:
    """The one ordering of events: by time, then type priority, then creation sequence."""
    return (time, int(kind), seq)


class DropReason(enum.StrEnum):
    """Why a request was not served. Every request of a trace is either completed or dropped with one of these."""

    PROMPT_TOO_LONG = "prompt_exceeds_max_model_len"  # overlength="drop" and prompt + output > max_model_len
    NO_INSTANCE = "no_instance_before_horizon"  # still queued at the gateway when the simulation horizon ended
    HORIZON = "unfinished_at_horizon"  # still inside an instance when the simulation horizon ended


class EngineEventKind(enum.IntEnum):
    FIRST_TOKEN = 0
    FINISHED = 1


class SimRequest:
    """One request inside a simulated instance. Plain slotted class: the simulator creates millions.

    ``generated`` counts output tokens produced so far. A sequence's KV footprint is ``prompt + generated``
    tokens (the slot for the token that the next decode step feeds in is included), held in
    ``ceil(footprint / block_size)`` blocks. While decoding, ``footprint = kv_base + steps`` where ``steps`` is
    the instance's decode-step counter, so a whole run of decode steps updates every sequence at once.
    """

    __slots__ = ("idx", "request_id", "arrival", "prompt", "output", "generated", "prefill_left",
                 "first_token_s", "finish_s", "preemptions", "kv_base", "finish_step", "blocks", "epoch",
                 "predicted", "instance", "last_token_s")

    def __init__(self, idx: int, request_id: str, arrival: float, prompt: int, output: int,
                 predicted: float = 0.0) -> None:
        if prompt < 1 or output < 1:
            raise ValueError(f"request {request_id}: prompt and output must be >= 1 token ({prompt}, {output})")
        self.idx = idx
        self.request_id = request_id
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.generated = 0
        self.prefill_left = 0  # tokens still to prefill (chunked prefill in progress)
        self.first_token_s = -1.0
        self.finish_s = -1.0
        self.preemptions = 0
        self.kv_base = 0  # footprint - decode steps, while decoding
        self.finish_step = 0  # decode-step count at which the last token is produced
        self.blocks = 0  # KV blocks held (maintained outside decode runs; decoding ones are recomputed)
        self.epoch = 0  # bumped when the request leaves the decode set, so stale heap entries are skipped
        self.predicted = predicted
        self.instance = -1
        # time of its latest output token, kept where the engine cannot derive it: set when it joins the
        # decode set and when it is preempted (the gap to its first token after re-prefill is an ITL)
        self.last_token_s = -1.0

    def __repr__(self) -> str:
        return (f"SimRequest({self.request_id}, arrival={self.arrival}, prompt={self.prompt}, "
                f"output={self.output}, generated={self.generated})")


class EngineEvent(NamedTuple):
    """Something an instance reports from :meth:`EngineInstance.advance`: a first token or a finished request."""

    time: float
    kind: EngineEventKind
    request: SimRequest
