"""The interface between the live instance managers and one serving engine, simulated or real.

An adapter hides whether the engine is the fleet simulator's steppable instance (advanced in *event* time by
the manager) or a real OpenAI-compatible server (which runs in wall time; its event time is the wall clock).
The manager only ever calls :meth:`submit`, :meth:`advance` and :meth:`status`, always with a
non-decreasing ``now``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["LiveRequest", "FinishedRequest", "EngineStatus", "EngineAdapter", "EngineFactory", "StartState",
           "Provisioning"]


class StartState(enum.Enum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Provisioning:
    """Where a starting instance stands: ready (at ``at``, event time), still pending, or failed (``reason``)."""

    state: StartState
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LiveRequest:
    """A routed request handed to an engine. ``output_tokens`` is the replay's ground truth (simulated engines
    stop there; a real engine generates until it stops, at most ``max_tokens``)."""

    request_id: str
    service: str
    arrival: float
    prompt_tokens: int
    output_tokens: int | None = None
    max_tokens: int | None = None
    predicted_tokens: float | None = None
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """What the engine measured for one request, in event time (seconds)."""

    request_id: str
    arrival: float
    first_token_at: float
    finished_at: float
    prompt_tokens: int
    output_tokens: int
    preemptions: int = 0
    output_sampled: bool = False  # no output length was given: drawn from the service's learned distribution
    truncated: bool = False  # clamped to the engine's context (prompt cut and/or output stopped at the limit)

    @property
    def ttft_s(self) -> float:
        return max(0.0, self.first_token_at - self.arrival)

    @property
    def e2e_s(self) -> float:
        return max(0.0, self.finished_at - self.arrival)


@dataclass(frozen=True, slots=True)
class EngineStatus:
    running: int
    waiting: int
    kv_used_tokens: int
    kv_capacity_tokens: int


class EngineAdapter(ABC):
    """One engine instance. Subclasses: ``SimulatedEngine`` (event time) and ``OpenAIEngine`` (real server)."""

    @abstractmethod
    def submit(self, request: LiveRequest, now: float) -> None:
        """Hand a request to the engine at event time ``now`` (it queues there)."""

    @abstractmethod
    def advance(self, now: float) -> list[FinishedRequest]:
        """Run the engine up to event time ``now``; return the requests that finished, in finishing order."""

    @abstractmethod
    def status(self) -> EngineStatus:
        """Load of the engine as of the last :meth:`advance`."""

    def idle(self) -> bool:
        """True when nothing runs or waits (a draining instance may then stop)."""
        st = self.status()
        return st.running == 0 and st.waiting == 0

    def close(self) -> None:  # noqa: B027
        """Release resources (connections, threads). Default: nothing to release."""

    def take_failed(self) -> list[tuple[LiveRequest, str]]:
        """Requests that failed since the last call, with reasons, for the manager to retry (default: none)."""
        return []

    def abandon(self) -> list[tuple[LiveRequest, str]]:
        """The engine is gone: hand back every request it still held (default: none)."""
        return []


class EngineFactory(ABC):
    """Creates the engine of a new instance (called when the instance becomes ready).

    The lifecycle hooks below default to a simulated fleet (ready ``cold_start_s`` after the request, never
    dies, nothing to start or stop); an actuator of real processes (``process_engine``) overrides them.
    """

    def provision(self, service: str, instance_id: str, now: float) -> None:  # noqa: B027
        """The scaler added an instance: start provisioning it (default: nothing to start)."""

    def readiness(self, service: str, instance_id: str, ready_at: float, now: float) -> Provisioning:
        """Is the starting instance ready at ``now``? ``ready_at`` is the manager's cold-start estimate."""
        if ready_at <= now:
            return Provisioning(StartState.READY, ready_at)
        return Provisioning(StartState.PENDING, ready_at)

    def drain(self, service: str, instance_id: str, now: float) -> None:  # noqa: B027
        """The instance takes no new routes from now on (default: nothing to tell)."""

    def release(self, service: str, instance_id: str, now: float) -> None:  # noqa: B027
        """The instance is stopped (drained, or cancelled while starting): free what it held."""

    def liveness(self, service: str, instance_id: str, now: float) -> str | None:
        """None while the instance's engine lives, else why it is gone (default: never dies)."""
        return None

    def poll(self, now: float) -> None:  # noqa: B027
        """Called once per manager step before the fleets advance (real actuators observe processes here)."""

    def shutdown(self) -> None:  # noqa: B027
        """The manager stops: stop everything this factory started."""

    @property
    def adopts_instances(self) -> bool:
        """True: a restarted manager re-creates the instances its log shows alive under the same ids (their
        engines live on, e.g. simulated ones); False: they died with the old manager (real processes) and are
        reported stopped, then replaced."""
        return False

    @property
    def drain_refuses_routes(self) -> bool:
        """True: a route that reaches a draining instance goes elsewhere (a real engine is about to stop);
        False: it still runs there (the simulated fleet, as the offline simulator does)."""
        return False

    @abstractmethod
    def create(self, service: str, instance_id: str, now: float) -> EngineAdapter: ...

    @property
    @abstractmethod
    def cold_start_s(self) -> float:
        """Event-time delay between a start request and the instance being ready."""

    @property
    def kv_capacity_tokens(self) -> int:
        return 0
