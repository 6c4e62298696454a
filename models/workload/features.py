"""Features of the workload forecaster: log-standardised density channels plus calendar encodings.

A series is an array ``values`` (N, 3) of per-window amounts in the order of :data:`TARGETS` (any unit: per-window
totals or per-second rates; the model only sees standardised logs) and ``window_start`` (N,) in seconds.
Calendar features are taken from ``window_start`` modulo a day / a week (UTC of the event-time epoch; a trace
whose epoch starts at 0 keeps its own phase). Inputs and targets are taken *relative to a reference level* at
the origin (``z[t+h] - ref[t]``), so a level shift between training and use does not move the forecast's
baseline. The reference is an exponentially weighted mean of the standardised logs over the history
(:func:`reference_level`); with weight 1 on the newest window (``ForecasterConfig.level_alpha = 1``, the default)
it is the origin window itself. A smoothed reference is meant to spare the network the denoising of a single
10-minute window (a zero output already is the EWMA forecast); on the ServeGen validation split it did not help
(models/workload/README.md), so it is an option, not the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TARGETS", "TARGET_ALIASES", "N_CALENDAR", "LogScaler", "calendar_features", "model_inputs",
           "reference_level", "make_samples", "memory_channels", "resolve_target"]

TARGETS: tuple[str, ...] = ("requests", "prompt_tokens", "output_tokens")
TARGET_ALIASES = {"generated_tokens": "output_tokens", "output_tokens": "output_tokens",
                  "prompt_tokens": "prompt_tokens", "requests": "requests"}
N_CALENDAR = 4
DAY_S = 86400.0
WEEK_S = 7 * DAY_S


def resolve_target(name: str) -> str:
    """Map a user-facing target name (``generated_tokens`` is an alias of ``output_tokens``) to a channel."""
    if name not in TARGET_ALIASES:
        raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGET_ALIASES)}")
    return TARGET_ALIASES[name]


@dataclass(frozen=True)
class LogScaler:
    """Standardisation of ``log1p(values)`` per channel, fitted on training windows only."""

    mean: np.ndarray  # (C,)
    std: np.ndarray  # (C,)

    @staticmethod
    def fit(values: np.ndarray) -> LogScaler:
        logs = np.log1p(np.maximum(values, 0.0))
        std = logs.std(axis=0)
        return LogScaler(mean=logs.mean(axis=0), std=np.where(std > 1e-6, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.log1p(np.maximum(values, 0.0)) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(np.expm1(z * self.std + self.mean), 0.0)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @staticmethod
    def from_dict(d: dict[str, list[float]]) -> LogScaler:
        return LogScaler(mean=np.asarray(d["mean"], dtype=float), std=np.asarray(d["std"], dtype=float))


def calendar_features(window_start: np.ndarray, window_s: float) -> np.ndarray:
    """(N, 4): sin/cos of time of day and of day of week, taken at the window's middle."""
    mid = np.asarray(window_start, dtype=float) + window_s / 2
    day = 2 * np.pi * (mid % DAY_S) / DAY_S
    week = 2 * np.pi * (mid % WEEK_S) / WEEK_S
    return np.stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=1)


def model_inputs(values: np.ndarray, window_start: np.ndarray, window_s: float, scaler: LogScaler) -> np.ndarray:
    """(N, 3 + 4) float32 inputs: standardised log channels, then calendar encodings."""
    z = scaler.transform(values)
    return np.concatenate([z, calendar_features(window_start, window_s)], axis=1).astype(np.float32)


def reference_level(z: np.ndarray, origins: np.ndarray, history: int, alpha: float) -> np.ndarray:
    """(S, C) exponentially weighted mean of ``z`` over each origin's history window (weight ``alpha`` on the
    origin, ``(1 - alpha)^j`` relative decay for j windows back, normalised). Only the history window is used, so
    a sample's reference depends on its inputs alone: a forecast from a 25-window buffer (online) and one from the
    whole series (offline) agree. ``alpha = 1`` gives the origin window."""
    assert 0 < alpha <= 1, "alpha must be in (0, 1]"
    w = (1 - alpha) ** np.arange(history)[::-1]  # oldest ... newest (weight 1)
    w = w / w.sum()
    hist_idx = np.asarray(origins, dtype=np.int64)[:, None] + np.arange(-history + 1, 1)[None, :]  # (S, L)
    return np.einsum("slc,l->sc", z[hist_idx], w)


def memory_channels(z: np.ndarray, valid: np.ndarray, hist_idx: np.ndarray, ref: np.ndarray, horizon: int,
                    period: int, day_lags: int) -> np.ndarray:
    """(S, L, 1 + C * day_lags) extra inputs of the multi-day network, per history step s (an index into the
    series; negative = before its start, i.e. left padding):

    - a flag, 1 where window s is real data (0 for padding and collection gaps);
    - for d = 1..day_lags, ``z[s + horizon - d * period] - ref``: the level d days earlier, *horizon windows
      ahead* of step s (0 where that window is missing). Over the last ``horizon`` steps of the history this is
      the previous day's course over exactly the windows being forecast, so the network can read "what
      happened next yesterday" from its own inputs, and the earlier steps align yesterday with today.
    """
    assert horizon <= period, "the day lags must lie in the past"
    n = len(z)
    ok_s = (hist_idx >= 0) & valid[np.clip(hist_idx, 0, n - 1)]
    chans = [ok_s[..., None].astype(np.float32)]
    for d in range(1, day_lags + 1):
        j = hist_idx + horizon - d * period
        ok = (j >= 0) & valid[np.clip(j, 0, n - 1)]
        lag = z[np.clip(j, 0, n - 1)] - ref[:, None, :]
        chans.append(np.where(ok[..., None], lag, 0.0).astype(np.float32))
    return np.concatenate(chans, axis=-1)


def make_samples(inputs: np.ndarray, z: np.ndarray, history: int, horizon: int, origins: np.ndarray | None = None,
                 level_alpha: float = 1.0, valid: np.ndarray | None = None, memory: tuple[int, int] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training windows. inputs (N, F), z (N, C) standardised targets.

    Returns X (S, history, F) with the density channels relative to the reference level at the origin
    (:func:`reference_level` with ``level_alpha``), Y (S, horizon, C) = z[t+h] - ref[t] for h = 1..horizon, and
    the origins t. Origins default to every t with a full history and a full horizon.

    ``memory = (period, day_lags)`` (the multi-day network): origins may have less than ``history`` windows
    before them -- the missing steps are zeros (left padding) -- and :func:`memory_channels` are appended;
    ``valid`` (N,) marks real windows for its flag and lags.
    """
    n = len(inputs)
    if origins is None:
        origins = np.arange(history - 1, n - horizon)
    origins = np.asarray(origins, dtype=np.int64)
    n_extra = 0 if memory is None else 1 + z.shape[1] * memory[1]
    if len(origins) == 0:
        return (np.zeros((0, history, inputs.shape[1] + n_extra), np.float32),
                np.zeros((0, horizon, z.shape[1]), np.float32), origins)
    hist_idx = origins[:, None] + np.arange(-history + 1, 1)[None, :]  # (S, L)
    fut_idx = origins[:, None] + np.arange(1, horizon + 1)[None, :]  # (S, H)
    c = z.shape[1]
    if memory is None:
        x = inputs[hist_idx].copy()
        ref = reference_level(inputs[:, :c], origins, history, level_alpha)  # (S, C)
        x[:, :, :c] -= ref[:, None, :]  # the network never sees the absolute level
        y = z[np.minimum(fut_idx, n - 1)] - reference_level(z, origins, history, level_alpha)[:, None, :]
        return x.astype(np.float32), y.astype(np.float32), origins
    assert level_alpha == 1.0, "the multi-day network is relative to the origin window"
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    pad = hist_idx < 0
    x = inputs[np.maximum(hist_idx, 0)].copy()
    ref = z[origins]  # (S, C)
    x[:, :, :c] -= ref[:, None, :]
    x[pad] = 0.0
    x = np.concatenate([x, memory_channels(z, ok, hist_idx, ref, horizon, memory[0], memory[1])], axis=-1)
    y = z[np.minimum(fut_idx, n - 1)] - ref[:, None, :]
    return x.astype(np.float32), y.astype(np.float32), origins
