"""The lifecycle of one engine process, as a pure state machine (explicit ``now``, no processes, no HTTP).

The process actuator (``process_actuator``) owns the real process; it feeds this machine what it observed (the
exit code if the process ended, whether the health endpoint answered, how many requests are in flight) and
sends the signal the machine asks for. Keeping the decisions here makes every timeout and transition testable
without starting anything.

::

    starting --healthy--> ready --drain()--> draining --in flight 0 or drain timeout--> terminating (SIGTERM)
       |                    |                                                                  |
       +--ready timeout-----+--stop()----------------------------------------------------------+
       |  (SIGTERM)                                                     term grace passed: killing (SIGKILL)
       +-- any state: the process exited --> exited (expected after a SIGTERM/SIGKILL we sent, else "died")
       +-- ready/draining, health silent for hang_timeout_s --> terminating, marked hung (lost like a dead one)

Why drain before SIGTERM: llama.cpp's server cuts the streams of requests in flight on SIGTERM and then
lingers (~30 s), so stopping a loaded engine directly would lose requests and hold its device.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Phase", "Signal", "LifecycleTimeouts", "EngineLifecycle"]


class Phase(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    TERMINATING = "terminating"  # SIGTERM sent
    KILLING = "killing"  # SIGKILL sent
    EXITED = "exited"


class Signal(enum.Enum):
    TERM = "SIGTERM"
    KILL = "SIGKILL"


@dataclass(frozen=True)
class LifecycleTimeouts:
    ready_timeout_s: float = field(default=60.0, metadata={"help": "a process not healthy by then is stopped"})
    drain_timeout_s: float = field(default=120.0, metadata={
        "help": "a draining process with requests still in flight after this is stopped anyway"})
    term_grace_s: float = field(default=5.0, metadata={"help": "SIGKILL this long after SIGTERM"})
    hang_timeout_s: float = field(default=15.0, metadata={
        "help": "a ready or draining process whose health endpoint has not answered for this long is hung: "
                "stopped and treated as dead (its requests re-routed, a replacement started); 0 = never"})

    def __post_init__(self) -> None:
        if min(self.ready_timeout_s, self.drain_timeout_s, self.term_grace_s, self.hang_timeout_s) < 0:
            raise ValueError("timeouts must be >= 0")


@dataclass
class EngineLifecycle:
    """One process from spawn to exit. Times are the caller's clock (wall seconds for real processes).

    :param instance_id: the fleet's instance id. :param spawned_at: when the process was started.
    :param timeouts: ready, drain and SIGTERM-grace timeouts."""

    instance_id: str
    spawned_at: float
    timeouts: LifecycleTimeouts = field(default_factory=LifecycleTimeouts)
    phase: Phase = Phase.STARTING
    ready_at: float | None = None
    drain_at: float | None = None
    term_at: float | None = None
    kill_at: float | None = None
    exited_at: float | None = None
    exit_code: int | None = None
    reason: str = ""  # why it stopped (or failed), for events and logs
    stop_requested: bool = False  # True once we asked it to stop: an exit after that is expected
    last_healthy: float | None = None  # the last health answer while ready or draining
    hung: bool = False  # alive but silent past the hang timeout: being stopped, lost like a dead one

    @property
    def lost(self) -> bool:
        """Gone for the manager: it died, or it hung (alive but silent; it is being stopped)."""
        return self.hung or self.died

    @property
    def cold_start_s(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.spawned_at

    @property
    def died(self) -> bool:
        """The process ended without being asked to (a crash, an OOM kill, a kill -9 from outside)."""
        return self.phase is Phase.EXITED and not self.stop_requested

    @property
    def failed_to_start(self) -> bool:
        return self.phase is Phase.EXITED and self.ready_at is None

    def _silent_for(self, now: float) -> float:
        last = self.last_healthy if self.last_healthy is not None else (self.ready_at or self.spawned_at)
        return now - last

    def lifetime_s(self, now: float) -> float:
        """Seconds the process has existed (to its exit if it exited): the basis of instance-hours."""
        end = self.exited_at if self.exited_at is not None else now
        return max(0.0, end - self.spawned_at)

    def _terminate(self, now: float, reason: str) -> Signal:
        self.stop_requested = True
        self.phase = Phase.TERMINATING
        self.term_at = now
        self.reason = self.reason or reason
        return Signal.TERM

    def drain(self, now: float) -> Signal | None:
        """Scale-down: a ready process stops taking routes and drains; a starting one is cancelled at once."""
        if self.phase is Phase.READY:
            self.phase = Phase.DRAINING
            self.drain_at = now
            self.stop_requested = True
            return None
        if self.phase is Phase.STARTING:
            return self._terminate(now, "cancelled before ready")
        return None

    def stop(self, now: float, reason: str = "stopped") -> Signal | None:
        """Stop now (drained, or the manager is shutting down): SIGTERM unless already stopping."""
        if self.phase in (Phase.STARTING, Phase.READY, Phase.DRAINING):
            return self._terminate(now, reason)
        return None

    def observe(self, now: float, exit_code: int | None, healthy: bool, in_flight: int,
                probed: bool | None = None) -> Signal | None:
        """Advance on what was observed at ``now``; returns the signal to send, if any. ``probed``: the health
        endpoint was asked at this observation (default: ``healthy``, i.e. a positive answer is a probe)."""
        if self.phase is Phase.EXITED:
            return None
        probed = healthy if probed is None else probed
        if exit_code is not None:
            if not self.stop_requested:
                what = "exited before ready" if self.ready_at is None else "died"
                self.reason = f"{what} (exit code {exit_code})"
            self.phase, self.exited_at, self.exit_code = Phase.EXITED, now, exit_code
            return None
        if self.phase in (Phase.READY, Phase.DRAINING) and probed:
            if healthy:
                self.last_healthy = now
            elif self._silent_for(now) >= self.timeouts.hang_timeout_s > 0:
                self.hung = True
                return self._terminate(now, f"hung: its health endpoint did not answer for "
                                            f"{self._silent_for(now):.0f} s")
        if self.phase is Phase.STARTING:
            if healthy:
                self.phase, self.ready_at, self.last_healthy = Phase.READY, now, now
            elif now - self.spawned_at >= self.timeouts.ready_timeout_s:
                return self._terminate(now, f"not ready after {self.timeouts.ready_timeout_s:g} s")
        elif self.phase is Phase.DRAINING:
            assert self.drain_at is not None
            if in_flight == 0:
                return self._terminate(now, "drained")
            if now - self.drain_at >= self.timeouts.drain_timeout_s:
                return self._terminate(now, f"drain timeout ({in_flight} requests still in flight)")
        elif self.phase is Phase.TERMINATING:
            assert self.term_at is not None
            if now - self.term_at >= self.timeouts.term_grace_s:
                self.phase, self.kill_at = Phase.KILLING, now
                return Signal.KILL
        return None
