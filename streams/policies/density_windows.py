"""Token density: per-service tumbling windows in event time of requests, prompt tokens and generated tokens.

Pure logic, no I/O. Used offline (:func:`density_series`, :func:`density_frame`) to turn a trace or a list of
completions into the forecaster's input, and live by the Faust ``density`` agent through the incremental
:class:`DensityAccumulator`. Both follow the same rules, so a replay aggregated offline and the live table agree:

- Windows are ``[k * window_s, (k + 1) * window_s)``: an event exactly at a boundary belongs to the *next* window.
- The watermark is per service: the largest event time seen for that service (a Kafka partition carries a
  service's events in order, but a worker reading several partitions interleaves them with different lags,
  so a global watermark would mark a lagging partition's events late). ``close_until(wm)`` can push it further.
- A window closes (is emitted) once ``window_end + grace_s <= watermark``. An event whose window is already
  closable when it arrives is *late*: it is not counted, it is returned so the caller can report it.
- A service's series has no short holes: windows with no events between its first and last window are emitted
  as zeros (a quiet window is zero load, not missing data), but at most ``max_quiet_windows`` in a row: a longer
  quiet stretch (a service idle for ten days, a replay that jumps ahead) is skipped in O(1), so the series then
  jumps to the next window with events. Consumers that need a dense series fill the jump themselves, bounded
  by their own memory (``OnlineForecaster.observe``); nothing rolls a gap window by window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from streams.records import TokenDensity

__all__ = [
    "CompletionLike",
    "DensityResult",
    "DensityAccumulator",
    "density_series",
    "density_frame",
    "DENSITY_COLUMNS",
]

DENSITY_COLUMNS = ["service", "window_start", "window_s", "requests", "prompt_tokens", "output_tokens"]
MAX_QUIET_WINDOWS = 60  # zero windows emitted in a row before a quiet stretch is skipped (an hour of 60 s windows)


class CompletionLike(Protocol):
    """What the density needs from an event: a ``Completion`` record or any object with these attributes."""

    @property
    def service(self) -> str: ...

    @property
    def ts(self) -> float: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def output_tokens(self) -> int: ...


@dataclass
class _Totals:
    requests: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _ServiceState:
    next_start: float  # first window not yet emitted
    watermark: float
    open: dict[int, _Totals] = field(default_factory=dict)  # window index -> totals
    quiet_run: int = 0  # zero windows emitted in a row just before next_start


def _record(service: str, index: int, window_s: float, t: _Totals) -> TokenDensity:
    start = index * window_s
    return TokenDensity(ts=start + window_s, service=service, window_start=start, window_s=window_s,
                        requests=t.requests, prompt_tokens=t.prompt_tokens, output_tokens=t.output_tokens)


class DensityAccumulator:
    """Incremental token density of many services (the live ``density`` agent's state).

    :param window_s: window size in seconds (60 for live control, 300/600 for planning).
    :param grace_s: how long after a window's end late events are still counted into it.
    :param max_quiet_windows: zero windows emitted in a row; the rest of a quiet stretch is skipped in O(1).
    """

    def __init__(self, window_s: float, grace_s: float = 0.0, max_quiet_windows: int = MAX_QUIET_WINDOWS) -> None:
        if window_s <= 0 or grace_s < 0 or max_quiet_windows < 0:
            raise ValueError(f"need window_s > 0, grace_s >= 0 and max_quiet_windows >= 0, got {window_s}, "
                             f"{grace_s}, {max_quiet_windows}")
        self.window_s = float(window_s)
        self.grace_s = float(grace_s)
        self.max_quiet_windows = max_quiet_windows
        self._services: dict[str, _ServiceState] = {}
        self._late: list[CompletionLike] = []

    def _index(self, ts: float) -> int:
        return math.floor(ts / self.window_s)

    def _is_closable(self, index: int, watermark: float) -> bool:
        return (index + 1) * self.window_s + self.grace_s <= watermark

    def add(self, event: CompletionLike) -> bool:
        """Count one event; return False (and keep it in :attr:`late`) if its window is already closed."""
        idx = self._index(event.ts)
        st = self._services.get(event.service)
        if st is None:
            st = _ServiceState(next_start=idx * self.window_s, watermark=event.ts)
            self._services[event.service] = st
        elif self._is_closable(idx, st.watermark) or idx * self.window_s < st.next_start:
            self._late.append(event)
            return False
        tot = st.open.setdefault(idx, _Totals())
        tot.requests += 1
        tot.prompt_tokens += int(event.prompt_tokens)
        tot.output_tokens += int(event.output_tokens)
        st.watermark = max(st.watermark, event.ts)
        return True

    def close_until(self, watermark: float | None = None) -> list[TokenDensity]:
        """Emit every window with ``end + grace <= watermark`` (per service; None: each service's own watermark)."""
        out: list[TokenDensity] = []
        for service, st in self._services.items():
            if watermark is not None:
                st.watermark = max(st.watermark, watermark)
            end = math.floor((st.watermark - self.grace_s) / self.window_s)
            while self._is_closable(end, st.watermark):  # the exact rule decides at a boundary, not the rounding
                end += 1
            while end > 0 and not self._is_closable(end - 1, st.watermark):
                end -= 1
            out += self._roll(service, st, end)
        return out

    def flush(self) -> list[TokenDensity]:
        """Emit all open windows (end of a finite stream), up to each service's last window with events."""
        out: list[TokenDensity] = []
        for service, st in self._services.items():
            if st.open:
                out += self._roll(service, st, max(st.open) + 1)
        return out

    def _roll(self, service: str, st: _ServiceState, end: int) -> list[TokenDensity]:
        """Emit the windows before index ``end``: each with events, and of a quiet stretch the first
        ``max_quiet_windows`` in a row; the rest of the stretch is skipped in one step (O(1) in its length)."""
        out: list[TokenDensity] = []
        idx = round(st.next_start / self.window_s)
        while idx < end:
            totals = st.open.pop(idx, None)
            if totals is not None:
                out.append(_record(service, idx, self.window_s, totals))
                st.quiet_run = 0
                idx += 1
                continue
            stop = min(min(st.open, default=end), end)  # the quiet stretch ends at the next window with events
            emit = max(0, min(stop - idx, self.max_quiet_windows - st.quiet_run))
            out.extend(_record(service, i, self.window_s, _Totals()) for i in range(idx, idx + emit))
            st.quiet_run += stop - idx
            idx = stop
        st.next_start = max(st.next_start, idx * self.window_s)
        return out

    def snapshot(self, service: str) -> dict[str, Any] | None:
        """The state of one service as plain JSON data (for a changelog-backed table), None if unknown."""
        st = self._services.get(service)
        if st is None:
            return None
        snap: dict[str, Any] = {"next_start": st.next_start, "watermark": st.watermark,
                                "open": {str(i): [t.requests, t.prompt_tokens, t.output_tokens]
                                         for i, t in st.open.items()}}
        if st.quiet_run:
            snap["quiet_run"] = st.quiet_run
        return snap

    def restore(self, service: str, snap: dict[str, Any]) -> None:
        """Replace one service's state by a :meth:`snapshot` (crash recovery of the live agent)."""
        self._services[service] = _ServiceState(
            next_start=float(snap["next_start"]), watermark=float(snap["watermark"]),
            open={int(i): _Totals(*map(int, t)) for i, t in snap["open"].items()},
            quiet_run=int(snap.get("quiet_run", 0)))

    def take_late(self) -> list[CompletionLike]:
        """Late events seen since the last call (to report, e.g. to the dead-letter topic or a counter)."""
        late, self._late = self._late, []
        return late

    @property
    def late(self) -> Sequence[CompletionLike]:
        return tuple(self._late)

    def watermark(self, service: str) -> float | None:
        st = self._services.get(service)
        return None if st is None else st.watermark


@dataclass(frozen=True)
class DensityResult:
    """Batch result: windows sorted by (service, window_start), and the late events in input order."""

    windows: list[TokenDensity]
    late: list[CompletionLike]


def density_frame(events: pd.DataFrame, window_s: float, grace_s: float = 0.0,
                  max_quiet_windows: int = MAX_QUIET_WINDOWS) -> tuple[pd.DataFrame, np.ndarray]:
    """Vectorised density of a frame with columns ``service, ts, prompt_tokens, output_tokens`` (rows in
    arrival order). Returns (windows frame with :data:`DENSITY_COLUMNS`, boolean mask of late rows).

    Same rules as :class:`DensityAccumulator`: per service, a row is late if its window end + grace is at or
    below the largest ``ts`` of the *earlier* rows of that service (or its window precedes the service's first).
    """
    if window_s <= 0 or grace_s < 0:
        raise ValueError(f"need window_s > 0 and grace_s >= 0, got {window_s}, {grace_s}")
    if events.empty:
        return pd.DataFrame(columns=DENSITY_COLUMNS), np.zeros(0, dtype=bool)
    ts = events["ts"].to_numpy(dtype=float)
    idx = np.floor(ts / window_s).astype(np.int64)
    service = events["service"].astype(str).to_numpy()
    prev_max = pd.Series(ts).groupby(service).cummax().groupby(service).shift(1).to_numpy()
    first_idx = pd.Series(idx).groupby(service).transform("first").to_numpy()
    late = ((idx + 1) * window_s + grace_s <= prev_max) | (idx < first_idx)
    ok = ~late
    frame = pd.DataFrame({"service": service[ok], "w": idx[ok], "requests": 1,
                          "prompt_tokens": events["prompt_tokens"].to_numpy(dtype=np.int64)[ok],
                          "output_tokens": events["output_tokens"].to_numpy(dtype=np.int64)[ok]})
    sums = frame.groupby(["service", "w"], sort=True)[["requests", "prompt_tokens", "output_tokens"]].sum()
    parts = []
    for svc, grp in sums.groupby(level=0, sort=True):
        g = grp.droplevel(0)
        full = g.reindex(np.arange(g.index.min(), g.index.max() + 1), fill_value=0)
        quiet = (full["requests"] == 0).to_numpy()
        if quiet.any():  # as the accumulator: at most max_quiet_windows zero windows in a row
            run_start = np.maximum.accumulate(np.where(~quiet, np.arange(len(quiet)), -1))
            full = full[~quiet | (np.arange(len(quiet)) - run_start <= max_quiet_windows)]
        parts.append(pd.DataFrame({"service": svc, "window_start": full.index.to_numpy() * window_s,
                                   "window_s": float(window_s), "requests": full["requests"].to_numpy(),
                                   "prompt_tokens": full["prompt_tokens"].to_numpy(),
                                   "output_tokens": full["output_tokens"].to_numpy()}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=DENSITY_COLUMNS)
    return out[DENSITY_COLUMNS], late


def density_series(completions: Iterable[CompletionLike], window_s: float, grace_s: float = 0.0,
                   max_quiet_windows: int = MAX_QUIET_WINDOWS) -> DensityResult:
    """Batch token density of a finite stream of completions (in arrival order); see the module docstring."""
    items = list(completions)
    frame = pd.DataFrame({"service": [c.service for c in items], "ts": [float(c.ts) for c in items],
                          "prompt_tokens": [int(c.prompt_tokens) for c in items],
                          "output_tokens": [int(c.output_tokens) for c in items]})
    windows, late = density_frame(frame, window_s, grace_s, max_quiet_windows)
    records = [TokenDensity(ts=float(r.window_start) + window_s, service=str(r.service),
                            window_start=float(r.window_start), window_s=float(window_s), requests=int(r.requests),
                            prompt_tokens=int(r.prompt_tokens), output_tokens=int(r.output_tokens))
               for r in windows.itertuples(index=False)]
    return DensityResult(windows=records, late=[c for c, is_late in zip(items, late, strict=True) if is_late])
