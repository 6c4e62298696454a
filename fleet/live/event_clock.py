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

__all__ = ["ReplayClock"]


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
