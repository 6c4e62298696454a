"""The interface between the live instance managers and one serving engine, simulated or real.

An adapter hides whether the engine is the fleet simulator's steppable instance (advanced in *event* time by
the manager) or a real OpenAI-compatible server (which runs in wall time; its event time is the wall clock).
The manager only ever calls :meth:`submit`, :meth:`advance` and :meth:`status`, always with a
non-decreasing ``now``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["LiveRequest", "FinishedRequest", "EngineStatus", "EngineAdapter", "EngineFactory"]


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


class EngineFactory(ABC):
    """Creates the engine of a new instance (called when the instance becomes ready)."""

    @abstractmethod
    def create(self, service: str, instance_id: str, now: float) -> EngineAdapter: ...

    @property
    @abstractmethod
    def cold_start_s(self) -> float:
        """Event-time delay between a start request and the instance being ready."""

    @property
    def kv_capacity_tokens(self) -> int:
        return 0
