"""Event times one client cannot corrupt: a window around the stream's own event time (pure, explicit wall).

Why: every event carries its client's ``ts``; a gateway with a clock 20 h ahead, or one that sends ``ts = 2001``,
would otherwise move the watermarks, windows and fleet clocks that every other service's decisions run on. The
guard compares each event with the *stream's* event time and dead-letters it (with the reason) when it is more than
``max_ahead_s`` ahead or ``max_behind_s`` behind; everything downstream then only sees plausible times.

The stream's event time, two clocks:

- ``wall``: events carry wall-clock time (a real gateway): the stream's time is this process's wall clock
  times ``speedup`` (1 for a gateway).
- ``stream`` (default): the stream's own clock, learned from the events themselves. Each event gives an offset
  ``ts - speedup * wall``; the stream's time at ``wall`` is ``speedup * wall`` plus the median offset of the recent
  events (accepted or not): the last ``memory`` of them, those older than ``memory_s`` wall seconds dropped as
  long as ``min_keep`` remain. A replay at speedup S with any epoch has a constant offset, so it is accepted
  whatever its epoch; a minority of skewed clients cannot move a median. A replay whose speedup is not declared
  (S = 1 assumed) drifts from the median by (S - 1) x the median's age, at most about ``memory_s / 2`` wall
  seconds on a busy stream: up to S ~ 30 stays inside the live defaults; a sparse replay at a high speedup must
  declare it (``event_speedup``). The first event of a stream has nothing to be compared with and is accepted; a stream
  that truly jumps (a replay restarted with a new epoch) is accepted again once half the memory holds the new
  offset.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

__all__ = ["EventSkewGuard", "SkewSettings", "EVENT_CLOCKS"]

EVENT_CLOCKS = ("stream", "wall")


@dataclass(frozen=True)
class SkewSettings:
    """:param clock: ``stream`` or ``wall`` (see the module docstring). :param speedup: event seconds per wall
    second of the stream. :param max_ahead_s: / :param max_behind_s: the accepted window around the stream's
    time (0 = no limit on that side). :param memory: most events the ``stream`` clock's median is taken over.
    :param memory_s: older events (wall seconds) are dropped... :param min_keep: ...as long as this many remain
    (a sparse stream keeps its last few)."""

    clock: str = "stream"
    speedup: float = 1.0
    max_ahead_s: float = 300.0
    max_behind_s: float = 3600.0
    memory: int = 64
    memory_s: float = 20.0
    min_keep: int = 5

    def __post_init__(self) -> None:
        if self.clock not in EVENT_CLOCKS:
            raise ValueError(f"event clock must be one of {EVENT_CLOCKS}, got {self.clock!r}")
        if not self.speedup > 0:
            raise ValueError(f"event speedup must be > 0, got {self.speedup}")
        if self.max_ahead_s < 0 or self.max_behind_s < 0 or self.memory < 1 or self.memory_s <= 0:
            raise ValueError("need max_ahead_s >= 0, max_behind_s >= 0 (0 = no limit), memory >= 1, memory_s > 0")
        if not 1 <= self.min_keep <= self.memory:
            raise ValueError("need 1 <= min_keep <= memory")


class EventSkewGuard:
    """Says whether an event time is inside the window around the stream's event time; the reason if not."""

    def __init__(self, settings: SkewSettings | None = None) -> None:
        self.s = settings or SkewSettings()
        self._recent: deque[tuple[float, float]] = deque()  # (wall, offset) in arrival order
        self._sorted: list[float] = []  # the same offsets, sorted (median in O(1), update in O(memory))
        self.rejected = 0

    def stream_time(self, wall: float) -> float | None:
        """The stream's event time at ``wall`` (None before the first event of a ``stream`` clock)."""
        base = self.s.speedup * wall
        if self.s.clock == "wall":
            return base
        if not self._sorted:
            return None
        return base + self._sorted[(len(self._sorted) - 1) // 2]

    def check(self, ts: float, wall: float) -> str | None:
        """None if ``ts`` is acceptable at ``wall``, else why not. Every event is remembered (a ``stream``
        clock follows its majority, accepted or not)."""
        ref = self.stream_time(wall)
        self._remember(wall, ts - self.s.speedup * wall)
        if ref is None:
            return None
        why = None
        if self.s.max_ahead_s and ts > ref + self.s.max_ahead_s:
            why = (f"event time {ts:.3f} is {ts - ref:.0f} s ahead of the stream's event time {ref:.3f} "
                   f"(more than {self.s.max_ahead_s:.0f} s; event clock {self.s.clock})")
        elif self.s.max_behind_s and ts < ref - self.s.max_behind_s:
            why = (f"event time {ts:.3f} is {ref - ts:.0f} s behind the stream's event time {ref:.3f} "
                   f"(more than {self.s.max_behind_s:.0f} s; event clock {self.s.clock})")
        self.rejected += why is not None
        return why

    def _remember(self, wall: float, offset: float) -> None:
        if self.s.clock == "wall":
            return
        self._recent.append((wall, offset))
        bisect.insort(self._sorted, offset)
        while len(self._recent) > self.s.memory or (
                len(self._recent) > self.s.min_keep and self._recent[0][0] < wall - self.s.memory_s):
            _, old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
