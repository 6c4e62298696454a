"""Base class of every router (baselines, PreServe). Pure: explicit ``now``, no clock, no I/O."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from streams.policies.fleet_view import CompletionInfo, FleetView, RequestInfo, RouteChoice

__all__ = ["BaseRouter", "NoReadyInstance"]


class NoReadyInstance(RuntimeError):
    """Raised by :meth:`BaseRouter.choose` when no instance is ready; the caller queues the request."""


class BaseRouter(ABC):
    """Chooses an instance for each request.

    Subclasses implement :meth:`choose`; the hooks let stateful routers (PreServe's anticipators,
    token-load) track what they placed. The caller calls :meth:`on_routed` right after dispatching and
    :meth:`on_completed` when the completion is observed. A router must only ever return a READY instance.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        """Pick a READY instance of ``fleet`` for ``request``; raise :class:`NoReadyInstance` if none."""

    def on_routed(self, request: RequestInfo, instance_id: str, now: float) -> None:  # noqa: B027
        """Observe a dispatch (default: stateless router, nothing to do)."""

    def on_completed(self, completion: CompletionInfo, now: float) -> None:  # noqa: B027
        """Observe a completion (default: nothing to do)."""

    def on_instance_removed(self, instance_id: str, now: float) -> None:  # noqa: B027
        """Observe that an instance stopped (default: nothing to do)."""
