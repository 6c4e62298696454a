"""A worker watching its own event loop (and, on request, its heap): the numbers a long run is judged by.

- **Loop lag**: a probe sleeps ``probe_s`` again and again; how late it wakes is the time the loop was busy with
  something else (a handler, a blocking call, GIL starvation by a thread). Every ``report_s`` the worker logs
  ``event loop lag over <s> s: n=<n> p50 <ms> ms p99 <ms> ms max <ms> ms`` (:data:`LAG_LINE`): the soak
  (``bench/soak``) reads these lines. Why a probe and not Faust's "Timer woke up too late" warnings: those appear
  only past a threshold and only for Faust's own timers; the probe gives a distribution, every minute.
- **Heap growth** (``PRESERVE_TRACEMALLOC=<seconds>``, off by default: tracing slows Python ~2x): every that
  many seconds the top allocation sites by growth since the first snapshot, as one log line each
  (:data:`HEAP_LINE`). How the soak's leaks were found.

:class:`LagWindow` and :func:`heap_growth_lines` are pure; the worker's task is in ``streams/app.py``.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LagWindow", "heap_growth_lines", "LAG_LINE", "HEAP_LINE", "TRACEMALLOC_ENV", "parse_lag_line"]

LAG_LINE = "event loop lag over"
HEAP_LINE = "heap growth"
TRACEMALLOC_ENV = "PRESERVE_TRACEMALLOC"


@dataclass
class LagWindow:
    """Lags (seconds) of one reporting window; :meth:`line` summarises and clears them."""

    lags: list[float] = field(default_factory=list)

    def add(self, lag_s: float) -> None:
        self.lags.append(max(0.0, lag_s))

    def line(self, window_s: float) -> str | None:
        if not self.lags:
            return None
        ms = np.asarray(self.lags) * 1000.0
        self.lags.clear()
        return (f"{LAG_LINE} {window_s:.0f} s: n={len(ms)} p50 {np.percentile(ms, 50):.1f} ms "
                f"p99 {np.percentile(ms, 99):.1f} ms max {ms.max():.1f} ms")


def parse_lag_line(line: str) -> tuple[int, float, float, float] | None:
    """(n, p50 ms, p99 ms, max ms) of a :data:`LAG_LINE` log line, None for any other line."""
    at = line.find(LAG_LINE)
    if at < 0:
        return None
    parts = line[at:].replace("n=", "").split()
    try:
        i = parts.index("p50")
        return int(parts[i - 1]), float(parts[i + 1]), float(parts[i + 4]), float(parts[i + 7])
    except (ValueError, IndexError):
        return None


def heap_growth_lines(first: tracemalloc.Snapshot, now: tracemalloc.Snapshot, top: int = 12) -> list[str]:
    """The ``top`` allocation sites (file:line) by growth in bytes since ``first``."""
    stats = now.compare_to(first, "lineno")
    stats.sort(key=lambda s: s.size_diff, reverse=True)
    return [f"{HEAP_LINE} {s.size_diff / 2**20:+.2f} MB ({s.count_diff:+d} blocks) at "
            f"{s.traceback[0].filename}:{s.traceback[0].lineno}" for s in stats[:top] if s.size_diff > 0]
