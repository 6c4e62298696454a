"""Event records: the wire schemas of every Kafka topic.

Why pydantic rather than `faust.Record`: the same models are used by the offline simulator, the CLI and the
agents; validation must produce a human-readable *reason* (which goes to the dead-letter topic), and the JSON
Schema files that gateways code against are generated from these classes (`preserve schemas`). Agents consume
raw bytes and call :func:`parse_event`, so a malformed message never raises inside Faust's deserializer.

Every record carries ``v`` (schema version) and an event time ``ts`` in seconds since the epoch (float).
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "MAX_ID_CHARS",
    "derived_id",
    "SCHEMA_VERSION",
    "MAX_PROMPT_CHARS",
    "MAX_TOKENS",
    "FUTURE_SKEW_S",
    "EventRecord",
    "RequestEvent",
    "PredictedRequest",
    "RouteDecision",
    "RoutingTable",
    "InstanceState",
    "InstanceEventKind",
    "InstanceEvent",
    "Completion",
    "TokenDensity",
    "Forecast",
    "ScaleCommand",
    "DeadLetter",
    "RECORD_TYPES",
    "InvalidEvent",
    "parse_event",
]

SCHEMA_VERSION = 1
MAX_PROMPT_CHARS = 200_000  # ~50k tokens; larger prompts are rejected rather than shipped through Kafka
MAX_TOKENS = 1_000_000  # no real request has a million-token prompt or output: such a value is a bug upstream
FUTURE_SKEW_S = 24 * 3600.0  # event times more than a day ahead of the validator's clock are rejected

# Integers are strict (checked in pydantic-core, no Python on the hot path): JSON ``true`` or ``1.5`` is not a token
# count, as the published schema says; pydantic's lax mode would have taken ``true`` as 1.
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]
Count = Annotated[int, Field(ge=0, strict=True)]
MAX_ID_CHARS = 256
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


class EventRecord(BaseModel):
    """Base of all records: frozen, unknown fields rejected, versioned, with an event time."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)
    topic: ClassVar[str] = ""

    v: Literal[1] = 1  # == SCHEMA_VERSION; a literal so old readers reject newer versions with a reason
    ts: float = Field(description="event time, seconds since the epoch (replays may use a shifted epoch)")

    @field_validator("ts")
    @classmethod
    def _ts_not_far_future(cls, ts: float) -> float:
        if ts != ts or ts < 0:  # NaN or negative
            raise ValueError("event time must be a non-negative number")
        if ts > time.time() + FUTURE_SKEW_S:
            raise ValueError(f"event time {ts:.0f} is more than {FUTURE_SKEW_S:.0f} s in the future")
        return ts

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class RequestEvent(EventRecord):
    """A request as the gateway saw it on arrival. ``prompt`` is optional (only the predictor reads it)."""

    topic: ClassVar[str] = "requests"
    request_id: Id
    service: Id = Field(description="the model / service name; the Kafka key")
    prompt_tokens: Tokens
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    max_tokens: Tokens | None = None
    # Ground truth carried by replays only (the simulated instance needs to know when to stop generating);
    # a real gateway leaves it unset.
    output_tokens: Tokens | None = None


class PredictedRequest(RequestEvent):
    """A RequestEvent plus the request-load predictor's output-length estimate.

    Prompts are sensitive and only the predictor needs them: the `predict` stage drops the text
    (``prompt=None``) and carries ``prompt_hash`` and ``prompt_chars`` downstream instead.
    """

    topic: ClassVar[str] = "predicted-requests"
    predicted_tokens: float = Field(ge=0, le=MAX_TOKENS, description="expected output tokens (the mean: for sums)")
    predicted_p90_tokens: float = Field(ge=0, le=MAX_TOKENS, description="90th percentile of output tokens")
    predicted_p10_tokens: float | None = Field(default=None, ge=0, le=MAX_TOKENS)
    predicted_p50_tokens: float | None = Field(default=None, ge=0, le=MAX_TOKENS, description="median")
    predicted_p99_tokens: float | None = Field(default=None, ge=0, le=MAX_TOKENS)
    service_unmapped: bool = Field(default=False, description="the service has no entry in the configured "
                                   "service -> serving-model map: the prediction backs off (less reliable)")
    predictor: str = Field(description="which predictor produced it, e.g. 'model' or 'fallback'")
    prompt_hash: str | None = Field(default=None, max_length=64)
    prompt_chars: int | None = Field(default=None, ge=0, le=MAX_PROMPT_CHARS)


class RouteDecision(EventRecord):
    topic: ClassVar[str] = "routes"
    request_id: Id
    service: Id
    instance_id: Id
    prompt_tokens: Tokens
    predicted_tokens: float = Field(ge=0, le=MAX_TOKENS)
    output_tokens: Tokens | None = None
    arrival_ts: float | None = Field(default=None, ge=0, description="the request's arrival (ts is the decision "
                                     "time, later when it waited for a ready instance)")
    policy: str
    score: float | None = None
    reason: str = ""
    prompt_hash: str | None = None
    # Provenance, for an exact replay from the archive (streams/stages/decision_replay.py): how many inputs of each kind
    # (see INPUT_KINDS) of this service the router had applied when it decided, and, for a request that waited
    # for a ready instance, when it was queued.
    inputs: dict[str, int] | None = None
    queued_at_inputs: dict[str, int] | None = None


class RoutingTable(EventRecord):
    """Periodic snapshot of a service's fleet as the router sees it (current + anticipated load)."""

    topic: ClassVar[str] = "routing-table"
    service: Id
    instances: list[dict[str, Any]]


class InstanceState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class InstanceEventKind(str, enum.Enum):
    START_REQUESTED = "start_requested"
    READY = "ready"
    DRAIN = "drain"
    STOPPED = "stopped"
    STATUS = "status"


class InstanceEvent(EventRecord):
    topic: ClassVar[str] = "instance-events"
    service: Id
    instance_id: Id
    kind: InstanceEventKind
    state: InstanceState
    running: Count = 0
    waiting: Count = 0
    kv_used_tokens: Tokens = 0
    kv_capacity_tokens: Tokens = 0
    # Completions of this service the instance managers had published when they sent this event: a consumer
    # that has received that many knows every completion up to ``ts`` is in (the scale agent's watermark).
    completions_published: Count | None = None
    # Route decisions of this service the instance managers had applied: a consumer of the requests that has
    # received that many has every request the fleet has seen (the scale agent's watermark, with the above).
    routes_applied: Count | None = None


class Completion(EventRecord):
    """A finished request. ``ts`` is the completion time; ``arrival_ts`` the request's arrival."""

    topic: ClassVar[str] = "completions"
    request_id: Id
    service: Id
    instance_id: Id
    arrival_ts: float = Field(ge=0)
    prompt_tokens: Tokens
    output_tokens: Tokens
    predicted_tokens: float | None = Field(default=None, ge=0, le=MAX_TOKENS)
    ttft_s: float = Field(ge=0)
    e2e_s: float = Field(ge=0)
    preemptions: Count = 0
    # Honest simulated lengths (optional, so older producers and consumers keep working):
    output_sampled: bool | None = Field(default=None, description=(
        "the request carried no output_tokens: the simulated engine drew this output length from the service's "
        "learned distribution (not a measured length)"))
    truncated: bool | None = Field(default=None, description=(
        "prompt + output exceeded the engine's context (max_model_len): the prompt was clamped and/or the output "
        "stopped at the limit, as vLLM does (finish_reason=length)"))
    rerouted_from: Id | None = Field(default=None, description=(
        "the instance the route named, when the instance managers ran the request elsewhere (that instance had "
        "stopped or died before the route reached it); instance_id is the one that served it"))


class TokenDensity(EventRecord):
    """Tumbling-window totals of one service. ``ts`` is the window end."""

    topic: ClassVar[str] = "token-density"
    service: Id
    window_start: float = Field(ge=0)
    window_s: float = Field(gt=0)
    requests: Count
    prompt_tokens: Count
    output_tokens: Count


class Forecast(EventRecord):
    topic: ClassVar[str] = "forecasts"
    service: Id
    window_s: float = Field(gt=0)
    first_window_start: float = Field(ge=0)
    target: str
    mean: list[float]
    upper: list[float] = Field(description="upper quantile per horizon step (same length as mean)")
    model: str
    quantiles: dict[str, list[float]] | None = Field(
        default=None, description="calibrated quantile forecasts: quantile as a string ('0.5', '0.9', '0.99') -> "
                                  "one value per horizon step (same length as mean); absent from older producers")


class ScaleCommand(EventRecord):
    topic: ClassVar[str] = "scale-commands"
    service: Id
    target_instances: int = Field(ge=0, le=10_000, strict=True)
    current_instances: int = Field(ge=0, le=10_000, strict=True)
    policy: str
    reason: str
    # A service's first command (its warm instances, as the simulator's t=0 fleet): the instance managers start
    # these ready at once and ignore it when the service already has instances (a restarted scale agent).
    bootstrap: bool = False
    inputs: dict[str, int] | None = None  # as RouteDecision.inputs, for the scale agent's inputs


class DeadLetter(EventRecord):
    """A message that could not be processed, with why. ``payload`` is the raw value (decoded lossily)."""

    topic: ClassVar[str] = "dead-letter"
    source_topic: str
    reason: str
    payload: str
    key: str | None = None
    partition: int | None = None
    offset: int | None = None


RECORD_TYPES: dict[str, type[EventRecord]] = {
    cls.topic: cls
    for cls in (
        RequestEvent,
        PredictedRequest,
        RouteDecision,
        RoutingTable,
        InstanceEvent,
        Completion,
        TokenDensity,
        Forecast,
        ScaleCommand,
        DeadLetter,
    )
}

R = TypeVar("R", bound=EventRecord)


class InvalidEvent(ValueError):
    """Raised by :func:`parse_event` with a one-line reason suitable for the dead-letter topic."""


def _reason(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse_event(raw: bytes | str | dict[str, Any], cls: type[R]) -> R:
    """Parse and validate one event; raise :class:`InvalidEvent` with the reason on any problem."""
    try:
        if isinstance(raw, dict):
            return cls.model_validate(raw)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise InvalidEvent(f"expected a JSON object, got {type(obj).__name__}")
        return cls.model_validate(obj)
    except UnicodeDecodeError as e:
        raise InvalidEvent(f"not UTF-8: {e}") from e
    except json.JSONDecodeError as e:
        raise InvalidEvent(f"malformed JSON: {e.msg} at char {e.pos}") from e
    except ValidationError as e:
        raise InvalidEvent(_reason(e)) from e


def derived_id(base: str, suffix: str) -> str:
    """``base + suffix`` within the identifier limit: a long base keeps its head and a short hash of itself,
    so every id derived from a valid one (instance ids from service names) is valid and distinct."""
    full = f"{base}{suffix}"
    if len(full) <= MAX_ID_CHARS:
        return full
    digest = hashlib.sha256(base.encode()).hexdigest()[:12]
    return f"{base[:MAX_ID_CHARS - len(suffix) - 13]}~{digest}{suffix}"
