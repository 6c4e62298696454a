"""Event time of a replay, read off the wall clock (pure: the caller passes the wall time).

A replay at ``speedup`` S produces event ``ts = t0 + trace_time`` at wall ``w0 + trace_time / S``. The instance
managers anchor on their inputs and run ``lag`` wall seconds behind that mapping, so decisions that crossed
Kafka in less than ``lag`` are applied at their own event time (see ``instance_manager``).

The lag follows the pipeline: each input's transport delay (how long after its ideal wall time it arrived) is
measured, and the lag is the base lag plus the largest delay of the last ``window_s`` wall seconds (with a
margin), capped. A slow patch (a busy machine, a rebalance) widens it and the clock holds still until the
mapping catches up; when the pipeline is quick again the lag shrinks and the clock catches up. So a slow
pipeline delays completions in wall time, not in event time, and the feedback to the control agents stays as
fresh as the pipeline allows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["ReplayClock", "ServiceClocks", "SpeedupCheck"]


class ReplayClock:
    """:param speedup: event seconds per wall second (the replay's ``--speedup``).
    :param lag_s: base wall lag. :param max_lag_s: cap of the adaptive lag.
    :param margin: extra share of the observed delay added to the lag. :param window_s: delay memory (wall s)."""

    def __init__(self, speedup: float = 1.0, lag_s: float = 0.5, max_lag_s: float = 30.0, margin: float = 0.5,
                 window_s: float = 30.0) -> None:
        if speedup <= 0 or lag_s < 0 or max_lag_s < lag_s or window_s <= 0:
            raise ValueError("need speedup > 0, 0 <= lag_s <= max_lag_s and window_s > 0")
        self.speedup = speedup
        self.base_lag_s = lag_s
        self.max_lag_s = max_lag_s
        self.margin = margin
        self.window_s = window_s
        self.anchor: tuple[float, float] | None = None  # (event ts, wall) of the quickest input so far
        self._delays: deque[tuple[float, float]] = deque()  # (wall, delay) of recent inputs
        self._last = float("-inf")
        self.max_delay_s = 0.0

    @property
    def lag_s(self) -> float:
        worst = max((d for _, d in self._delays), default=0.0)
        return min(self.max_lag_s, self.base_lag_s + (1.0 + self.margin) * worst)

    def observe(self, ts: float, wall: float) -> None:
        """Record one input's transport delay (the first input anchors the mapping)."""
        if self.anchor is None:
            self.anchor = (ts, wall)
            return
        ts0, w0 = self.anchor
        delay = wall - (w0 + (ts - ts0) / self.speedup)
        if delay < 0:  # quicker than the anchor: re-anchor on it (delays are relative to the quickest input)
            self.anchor = (ts0, w0 + delay)
            delay = 0.0
        self.max_delay_s = max(self.max_delay_s, delay)
        self._delays.append((wall, delay))
        while self._delays and self._delays[0][0] < wall - self.window_s:
            self._delays.popleft()

    def now(self, wall: float) -> float | None:
        """Event time at ``wall`` (None before the first input); never goes back."""
        if self.anchor is None:
            return None
        while self._delays and self._delays[0][0] < wall - self.window_s:
            self._delays.popleft()
        ts0, w0 = self.anchor
        self._last = max(self._last, ts0 + max(0.0, wall - w0 - self.lag_s) * self.speedup)
        return self._last


class ServiceClocks:
    """One :class:`ReplayClock` per service: an input stamped far off by one service's client re-anchors that
    service's clock only (a single clock let one event 20 h ahead move every service 20 h; issue 21).

    :param make: a new service's clock (all share the replay's speedup and lag settings)."""

    def __init__(self, make: Callable[[], ReplayClock]) -> None:
        self.make = make
        self.clocks: dict[str, ReplayClock] = {}

    def observe(self, service: str, ts: float, wall: float) -> None:
        clock = self.clocks.get(service)
        if clock is None:
            clock = self.clocks[service] = self.make()
        clock.observe(ts, wall)

    def forget(self, service: str) -> None:
        """The service moved to another manager: if it comes back, its clock starts again."""
        self.clocks.pop(service, None)

    def now(self, wall: float) -> dict[str, float]:
        """Each started service's event time at ``wall``."""
        return {s: t for s, c in self.clocks.items() if (t := c.now(wall)) is not None}


class SpeedupCheck:
    """Does the event stream progress at the speed ``preserve fleet`` was told (``--speedup``)?

    A fleet whose speedup is wrong runs its engines on a clock that is not the events': at ``--speedup 10`` with a
    gateway's wall-clock events, every request waits for a clock ten times too fast and the measured latencies are
    invented. The check compares the event-time progress of the arrivals with the wall-time progress over the
    last ``window_s`` wall seconds (at least ``min_wall_s`` of them): the measured speed is the growth of the
    latest event time over the growth of the wall time, and a ratio to the declared speedup beyond ``tolerance``
    (either way) is a mismatch. The window forgets: a new replay (a new epoch) is judged on its own.

    :param speedup: the declared speedup. :param tolerance: accepted ratio (e.g. 1.5: from 1/1.5 to 1.5 times).
    :param min_wall_s: wall seconds of arrivals needed before judging. :param window_s: wall seconds judged."""

    def __init__(self, speedup: float, tolerance: float = 1.5, min_wall_s: float = 20.0,
                 window_s: float = 300.0) -> None:
        if speedup <= 0 or tolerance <= 1 or min_wall_s <= 0 or window_s < min_wall_s:
            raise ValueError("need speedup > 0, tolerance > 1 and 0 < min_wall_s <= window_s")
        self.speedup = speedup
        self.tolerance = tolerance
        self.min_wall_s = min_wall_s
        self.window_s = window_s
        self._marks: deque[tuple[float, float]] = deque()  # (wall, latest event time so far), one per new high
        self._high = float("-inf")

    def observe(self, ts: float, wall: float) -> None:
        if ts < self._high - self.window_s * self.speedup * self.tolerance:
            self._marks.clear()  # the stream went back (a new replay epoch): judge it afresh
            self._high = float("-inf")
        if ts > self._high:
            self._high = ts
            self._marks.append((wall, ts))
        while len(self._marks) > 2 and self._marks[1][0] < wall - self.window_s:
            self._marks.popleft()

    def measured(self) -> float | None:
        """Event seconds per wall second of the recent arrivals (None until ``min_wall_s`` of them)."""
        if len(self._marks) < 2:
            return None
        (w0, t0), (w1, t1) = self._marks[0], self._marks[-1]
        if w1 - w0 < self.min_wall_s:
            return None
        return (t1 - t0) / (w1 - w0)

    def mismatch(self) -> str | None:
        """Why the declared speedup does not match the stream (None if it does, or too early to say)."""
        got = self.measured()
        if got is None:
            return None
        ratio = got / self.speedup
        if 1 / self.tolerance <= ratio <= self.tolerance:
            return None
        return (f"the event stream runs at {got:.2f} event s per wall s but preserve fleet was started with "
                f"--speedup {self.speedup:g}: its latencies are not real. Restart it with --speedup "
                f"{max(round(got, 1), 0.1):g} (a gateway stamping wall-clock time needs --speedup 1)")
