"""Event time of a replay, read off the wall clock (pure: the caller passes the wall time).

A replay at ``speedup`` S produces event ``ts = t0 + trace_time`` at wall ``w0 + trace_time / S``. The instance
managers anchor on the first input they receive and run ``lag_s`` wall seconds behind that mapping, so decisions
that crossed Kafka in less than ``lag_s`` are still applied at their own event time (see ``instance_manager``).
"""

from __future__ import annotations

__all__ = ["ReplayClock"]


class ReplayClock:
    """:param speedup: event seconds per wall second (the replay's ``--speedup``). :param lag_s: wall lag."""

    def __init__(self, speedup: float = 1.0, lag_s: float = 0.5) -> None:
        if speedup <= 0 or lag_s < 0:
            raise ValueError("speedup must be > 0 and lag_s >= 0")
        self.speedup = speedup
        self.lag_s = lag_s
        self.anchor: tuple[float, float] | None = None  # (event ts, wall) of the first input

    def observe(self, ts: float, wall: float) -> None:
        """Anchor on the first input: it was produced about when it was received."""
        if self.anchor is None:
            self.anchor = (ts, wall)

    def now(self, wall: float) -> float | None:
        """Event time at ``wall`` (None before the first input)."""
        if self.anchor is None:
            return None
        ts0, w0 = self.anchor
        return ts0 + max(0.0, wall - w0 - self.lag_s) * self.speedup
