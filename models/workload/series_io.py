"""Load a workload series from the file kinds the forecaster CLI accepts (I/O edge of the forecaster).

- **ServeGen aggregate CSV** (``window_start_s, req_per_s, in_tok_per_s_covered, out_tok_per_s_covered,
  rate_coverage``): requests per second are exact; token rates cover only the clients whose length
  distributions are known, so they are divided by ``rate_coverage`` (a full-traffic estimate that assumes the
  uncovered clients send requests of the same mean length). Units: per second.
- **ServeGen per-client folder** (``chunk-N-trace.csv[.gz]``): the clients' request rates are summed; there are no
  token counts, so only ``requests`` is available. Units: per second.
- **Density CSV** (``window_start, requests, prompt_tokens, output_tokens`` [, ``service``, ``window_s``]), e.g.
  the token-density topic exported from ClickHouse. Units: per window.
- **Per-request trace** (any format ``replay.load_trace`` reads): aggregated with
  :func:`streams.policies.density_windows.density_frame` by *arrival* time (the demand the fleet must serve). Per window.

ServeGen windows with zero requests are collection gaps (a production service at hundreds of requests per second
does not go silent for hours), so they are marked invalid: carried forward as model input, never scored or
trained on. In density CSVs and traces a zero is real and kept. ``--window`` may be a multiple of the file's
window (rates are averaged, totals summed).
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.workload.features import TARGETS

__all__ = ["WorkloadSeries", "load_series", "concat_series", "SeriesError"]

SERVEGEN_AGG = ("window_start_s", "req_per_s", "in_tok_per_s_covered", "out_tok_per_s_covered", "rate_coverage")
DENSITY = ("window_start", "requests", "prompt_tokens", "output_tokens")


class SeriesError(ValueError):
    """A series file that can't be used, with the reason (and the line where there is one)."""


@dataclass(frozen=True)
class WorkloadSeries:
    values: np.ndarray  # (N, 3) in TARGETS order, gaps carried forward
    window_start: np.ndarray  # (N,) seconds
    window_s: float
    valid: np.ndarray  # (N,) False for gap windows
    available: tuple[str, ...]  # channels with real data
    unit: str  # "per_second" or "per_window"
    source: str
    notes: list[str] = field(default_factory=list)


def _open_text(path: Path) -> io.TextIOBase:
    """Plain or gzip text (detected from the magic bytes, whatever the file name)."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115 - returned to the caller


def _numeric(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col in cols:
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() | (v < 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SeriesError(f"{path}: line {row + 2}: {col} must be a non-negative number, got {df[col].iloc[row]!r}")
        out[col] = v.astype(float)
    return out


def _regroup(values: np.ndarray, starts: np.ndarray, valid: np.ndarray, base_s: float, window_s: float,
             how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge consecutive base windows into ``window_s`` windows (mean for rates, sum for totals)."""
    k = window_s / base_s
    if abs(k - round(k)) > 1e-9 or round(k) < 1:
        raise SeriesError(f"--window {window_s:g} s must be a multiple of the file's {base_s:g} s windows")
    k = int(round(k))
    if k == 1:
        return values, starts, valid
    n = len(values) // k * k
    v = values[:n].reshape(-1, k, values.shape[1])
    merged = v.mean(axis=1) if how == "mean" else v.sum(axis=1)
    return np.asarray(merged), starts[:n:k], np.asarray(valid[:n].reshape(-1, k).all(axis=1))


def _dense(frame: pd.DataFrame, start_col: str, base_s: float) -> pd.DataFrame:
    """Reindex to a hole-free grid of windows (missing rows become NaN)."""
    idx = np.round(frame[start_col].to_numpy() / base_s).astype(np.int64)
    frame = frame.assign(_k=idx).groupby("_k").sum(numeric_only=True)
    return frame.reindex(np.arange(idx.min(), idx.max() + 1))


def _finish(raw: np.ndarray, starts: np.ndarray, valid: np.ndarray, base_s: float, window_s: float, how: str,
            available: tuple[str, ...], unit: str, source: str, notes: list[str]) -> WorkloadSeries:
    raw = np.where(valid[:, None], raw, np.nan)
    filled = pd.DataFrame(raw).ffill().bfill().fillna(0.0).to_numpy()
    values, starts, valid = _regroup(filled, starts, valid, base_s, window_s, how)
    if len(values) < 10:
        raise SeriesError(f"{source}: only {len(values)} windows of {window_s:g} s; need at least 10")
    return WorkloadSeries(values=values, window_start=starts.astype(float), window_s=float(window_s), valid=valid,
                          available=available, unit=unit, source=source, notes=notes)


def _servegen_aggregate(df: pd.DataFrame, path: Path, window_s: float) -> WorkloadSeries:
    num = _numeric(df, SERVEGEN_AGG, path)
    starts = num["window_start_s"].to_numpy()
    base_s = float(np.median(np.diff(starts))) if len(starts) > 1 else window_s
    num = _dense(num, "window_start_s", base_s)
    req = num["req_per_s"].to_numpy()
    cov = num["rate_coverage"].to_numpy()
    valid = (req > 0) & (cov > 0) & ~np.isnan(req)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.stack([req, num["in_tok_per_s_covered"].to_numpy() / cov,
                        num["out_tok_per_s_covered"].to_numpy() / cov], axis=1)
    notes = ["token rates divided by rate_coverage (full-traffic estimate)",
             f"{int((~valid).sum())} zero-request windows treated as collection gaps"]
    starts = num.index.to_numpy() * base_s
    return _finish(raw, starts, valid, base_s, window_s, "mean", TARGETS, "per_second", str(path), notes)


def _servegen_folder(path: Path, window_s: float) -> WorkloadSeries:
    from replay.servegen_io import load_servegen

    clients = load_servegen(path)
    per = clients.groupby("window_start_s", sort=True)["rate"].sum().reset_index()
    base_s = float(np.median(np.diff(per["window_start_s"].to_numpy()))) if len(per) > 1 else window_s
    dense = _dense(per, "window_start_s", base_s)
    req = dense["rate"].to_numpy()
    valid = req > 0
    raw = np.stack([req, np.zeros_like(req), np.zeros_like(req)], axis=1)
    notes = [f"sum of {clients['client'].nunique()} clients' request rates; no token counts in this source",
             f"{int((~valid).sum())} zero-request windows treated as collection gaps"]
    return _finish(raw, dense.index.to_numpy() * base_s, valid, base_s, window_s, "mean", ("requests",),
                   "per_second", str(path), notes)


def _density_csv(df: pd.DataFrame, path: Path, window_s: float, service: str | None) -> WorkloadSeries:
    notes = []
    if "service" in df.columns:
        services = sorted(df["service"].astype(str).unique())
        if service is not None:
            if service not in services:
                raise SeriesError(f"{path}: service {service!r} not in {services}")
            df = df[df["service"].astype(str) == service]
        elif len(services) > 1:
            notes.append(f"summed {len(services)} services")
    num = _numeric(df, DENSITY, path)
    starts = num["window_start"].to_numpy()
    if "window_s" in df.columns:
        base_s = float(df["window_s"].iloc[0])
    else:  # the smallest step between windows (a density CSV may skip empty windows)
        steps = np.diff(np.unique(starts))
        base_s = float(steps.min()) if len(steps) else window_s
    dense = _dense(num, "window_start", base_s).fillna(0.0)  # a window the density did not emit had no events
    raw = dense[list(DENSITY[1:])].to_numpy()
    return _finish(raw, dense.index.to_numpy() * base_s, np.ones(len(raw), bool), base_s, window_s, "sum",
                   TARGETS, "per_window", str(path), notes)


def _trace(path: Path, window_s: float, service: str | None) -> WorkloadSeries:
    from replay import load_trace
    from streams.policies.density_windows import density_frame

    loaded = load_trace(path)
    df = loaded.df
    if service is not None:
        df = df[df["service"] == service]
    if df.empty:
        raise SeriesError(f"{path}: no requests" + (f" of service {service!r}" if service else ""))
    events = pd.DataFrame({"service": "all", "ts": df["arrival_s"].to_numpy(dtype=float),
                           "prompt_tokens": df["prompt_tokens"], "output_tokens": df["output_tokens"]})
    # the density stage's windows, by arrival here; a training series stays dense (every quiet window a zero)
    frame, _ = density_frame(events, window_s, max_quiet_windows=2**62)
    notes = [f"per-request trace ({loaded.fmt}) aggregated by arrival time; {len(loaded.bad_rows)} bad rows skipped"]
    raw = frame[list(DENSITY[1:])].to_numpy(dtype=float)
    return _finish(raw, frame["window_start"].to_numpy(dtype=float), np.ones(len(raw), bool), window_s, window_s,
                   "sum", TARGETS, "per_window", str(path), notes)


def load_series(path: str | Path, window_s: float, service: str | None = None) -> WorkloadSeries:
    """Load any supported series file or folder (see the module docstring) at ``window_s`` resolution."""
    p = Path(path)
    if not p.exists():
        raise SeriesError(f"{p}: no such file or folder")
    if p.is_dir():
        return _servegen_folder(p, window_s)
    with _open_text(p) as fh:
        header = fh.readline().strip().lstrip("\ufeff").split(",")
    cols = {c.strip() for c in header}
    if set(SERVEGEN_AGG) <= cols or set(DENSITY) <= cols:
        with _open_text(p) as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False)
        df.columns = [c.strip() for c in df.columns]
        return _servegen_aggregate(df, p, window_s) if set(SERVEGEN_AGG) <= cols else \
            _density_csv(df, p, window_s, service)
    return _trace(p, window_s, service)


def concat_series(parts: list[WorkloadSeries], gap: int) -> WorkloadSeries:
    """One training series out of several of the same window and unit: each part keeps its own window starts
    (its calendar), and ``gap`` invalid windows (zeros, never trained on or read as a day lag) separate them,
    so no sample's history, day lags or horizon mixes two parts when ``gap`` covers the network's reach."""
    if not parts:
        raise SeriesError("no series to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.window_s != first.window_s or p.unit != first.unit:
            raise SeriesError(f"{p.source}: window {p.window_s} s / unit {p.unit} differ from {first.source}")
    avail = tuple(t for t in first.available if all(t in p.available for p in parts))
    vals, starts, valid = [], [], []
    for j, p in enumerate(parts):
        if j:
            vals.append(np.zeros((gap, p.values.shape[1])))
            starts.append(p.window_start[0] - first.window_s * np.arange(gap, 0, -1))
            valid.append(np.zeros(gap, bool))
        vals.append(p.values)
        starts.append(p.window_start)
        valid.append(p.valid)
    return WorkloadSeries(values=np.concatenate(vals), window_start=np.concatenate(starts), window_s=first.window_s,
                          valid=np.concatenate(valid), available=avail, unit=first.unit,
                          source="+".join(p.source for p in parts),
                          notes=[f"{len(parts)} series joined by {gap} invalid windows"] + first.notes)
