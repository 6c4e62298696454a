"""Long per-request traces synthesised from ServeGen per-client window statistics (vectorised numpy).

ServeGen (alibaba/ServeGen, ``data/language/<model>/chunk-N-trace.csv``) records, for each client and 600 s
window: the mean request rate, the coefficient of variation (cv) of inter-arrival times and the fitted
inter-arrival law (``Gamma`` or ``Weibull``, ``arg1`` = shape, ``arg2`` = scale, scipy conventions: for Gamma
``shape = 1/cv^2`` and ``shape*scale = 1/rate``). For every (client, window) with a positive rate we draw

* a count ``n`` = ``rate * rate_scale * window_len / time_scale`` rounded stochastically (floor + Bernoulli of
  the fraction), so each window carries its recorded rate exactly in expectation and almost exactly per window;
* ``n + 1`` gaps from the recorded law with the recorded *shape* (the burstiness); the scale is implied by the
  rate: the gaps are normalised to span the played window (``window_len / time_scale``). For exponential gaps
  this is exactly a Poisson process conditioned on its count; for Gamma/Weibull it keeps the recorded cv of the
  gaps, so bursts and lulls inside the window look like the recorded ones.

Windows are independent (ServeGen itself fits them independently). Token lengths come from a pool of
(prompt, output) pairs (another trace or a prompt corpus), sampled with replacement, jointly, per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from replay.trace_schema import empty_trace

__all__ = ["SynthConfig", "SERVEGEN_COLUMNS", "synthesize_arrivals", "synthesize_trace", "window_rates"]

SERVEGEN_COLUMNS: tuple[str, ...] = ("window_start_s", "rate", "cv", "dist", "shape", "scale")
SERVEGEN_WINDOW_S = 600.0
_LAWS = {"gamma": "gamma", "weibull": "weibull", "exponential": "exponential", "": "exponential"}


@dataclass(frozen=True)
class SynthConfig:
    start_hour: float = field(default=0.0, metadata={"help": "first hour of the recording to synthesise"})
    hours: float = field(default=24.0, metadata={"help": "how many recorded hours to synthesise"})
    rate_scale: float = field(default=1.0, metadata={"help": "multiply every client's arrival rate by this"})
    time_scale: float = field(default=1.0, metadata={
        "help": "play the recording T times faster: a window lasts window/T seconds at its own per-second rate"})
    window_s: float = field(default=SERVEGEN_WINDOW_S, metadata={"help": "length of a recorded window (s)"})
    service: str = field(default="servegen", metadata={"help": "service name of every request"})

    def __post_init__(self) -> None:
        if self.start_hour < 0 or self.hours <= 0:
            raise ValueError(f"start_hour must be >= 0 and hours > 0, got {self.start_hour}, {self.hours}")
        if self.rate_scale <= 0 or self.time_scale <= 0 or self.window_s <= 0:
            raise ValueError("rate_scale, time_scale and window_s must be positive")


def window_rates(clients: pd.DataFrame, cfg: SynthConfig) -> pd.DataFrame:
    """The (client, window) rows inside ``[start_hour, start_hour + hours)`` with a positive rate.

    Adds ``play_start_s`` (when the window starts in the synthesised trace), ``play_len_s`` (its played
    length, clipped to the requested span) and ``expected`` (its expected number of requests).
    """
    lo, hi = cfg.start_hour * 3600.0, (cfg.start_hour + cfg.hours) * 3600.0
    begin = clients["window_start_s"].clip(lower=lo)
    end = (clients["window_start_s"] + cfg.window_s).clip(upper=hi)
    rows = clients[(end > begin) & (clients["rate"] > 0)].copy()
    rows["play_start_s"] = (begin[rows.index] - lo) / cfg.time_scale
    rows["play_len_s"] = (end[rows.index] - begin[rows.index]) / cfg.time_scale
    rows["expected"] = rows["rate"] * cfg.rate_scale * rows["play_len_s"]
    return rows.sort_values(["play_start_s", "client"], kind="stable").reset_index(drop=True)


def _gap_shapes(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per window: law code (0 gamma, 1 weibull) and shape. Unfitted windows fall back to Gamma(1/cv^2)."""
    laws = rows["dist"].fillna("").astype(str).str.strip().str.lower()
    unknown = sorted(set(laws) - set(_LAWS))
    if unknown:
        raise ValueError(f"unknown inter-arrival distribution(s) {unknown}; known: Gamma, Weibull, Exponential")
    law = laws.map(_LAWS)
    shape = rows["shape"].to_numpy(dtype=np.float64).copy()
    cv = rows["cv"].to_numpy(dtype=np.float64)
    expo = (law == "exponential").to_numpy()
    # No fitted law: Gamma with the recorded cv keeps the burstiness (cv 0 or unknown: Poisson).
    shape[expo] = np.where(cv[expo] > 0, 1.0 / np.maximum(cv[expo], 1e-3) ** 2, 1.0)
    bad = ~np.isfinite(shape) | (shape <= 0)
    shape[bad] = 1.0
    return (law == "weibull").to_numpy().astype(np.int8), shape


def synthesize_arrivals(rows: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (s, unsorted) and the index of their window row, for rows from :func:`window_rates`."""
    expected = rows["expected"].to_numpy(dtype=np.float64)
    counts = np.floor(expected).astype(np.int64)
    counts += rng.random(len(expected)) < (expected - counts)
    is_weibull, shape = _gap_shapes(rows)
    gaps_per = counts + 1
    seg = np.repeat(np.arange(len(rows)), gaps_per)
    seg_shape = shape[seg]
    seg_weibull = is_weibull[seg].astype(bool)
    gaps = np.empty(len(seg), dtype=np.float64)
    gaps[~seg_weibull] = rng.standard_gamma(seg_shape[~seg_weibull])
    gaps[seg_weibull] = rng.weibull(seg_shape[seg_weibull])
    starts = np.concatenate([[0], np.cumsum(gaps_per)[:-1]])
    totals = np.add.reduceat(gaps, starts)
    # Tiny Gamma shapes (cv >> 1) can underflow every gap of a window to 0: spread those evenly instead.
    degenerate = ~(totals > 0) | ~np.isfinite(totals)
    gaps[degenerate[seg]] = 1.0
    totals[degenerate] = gaps_per[degenerate]
    frac = gaps / totals[seg]  # each window's gaps now sum to 1: no precision lost across windows
    within = np.cumsum(frac)
    within -= np.repeat(within[starts] - frac[starts], gaps_per)
    last = np.cumsum(gaps_per) - 1
    keep = np.ones(len(seg), dtype=bool)
    keep[last] = False  # n + 1 gaps place n arrivals: the last gap runs to the window's end
    pos = np.clip(within[keep], 0.0, np.nextafter(1.0, 0.0))
    win = seg[keep]
    play_start = rows["play_start_s"].to_numpy(dtype=np.float64)
    play_len = rows["play_len_s"].to_numpy(dtype=np.float64)
    return play_start[win] + pos * play_len[win], win


def synthesize_trace(clients: pd.DataFrame, cfg: SynthConfig, lengths: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A normalised trace from ServeGen client windows and a pool of (prompt_tokens, output_tokens) pairs.

    :param clients: columns ``client`` and :data:`SERVEGEN_COLUMNS` (see ``servegen_io.load_servegen``).
    :param lengths: the length pool: ``prompt_tokens``, ``output_tokens`` (rows sampled jointly).
    """
    if lengths.empty:
        raise ValueError("the length pool is empty")
    rng = np.random.default_rng(seed)
    rows = window_rates(clients, cfg)
    if rows.empty:
        return empty_trace()
    arrival, _ = synthesize_arrivals(rows, rng)
    arrival.sort(kind="stable")
    pick = rng.integers(0, len(lengths), size=len(arrival))
    arrival -= arrival[0]
    return pd.DataFrame({
        "request_id": np.char.add(f"{cfg.service}-", np.arange(len(arrival)).astype(str)).astype(object),
        "arrival_s": arrival,
        "service": np.full(len(arrival), cfg.service, dtype=object),
        "prompt_tokens": lengths["prompt_tokens"].to_numpy(dtype=np.int64)[pick],
        "output_tokens": lengths["output_tokens"].to_numpy(dtype=np.int64)[pick],
    })
