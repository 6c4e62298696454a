"""Read ServeGen per-client trace files (``chunk-N-trace.csv[.gz]``, no header) into one DataFrame."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from replay.servegen_synth import SERVEGEN_COLUMNS
from replay.trace_loader import open_text
from replay.trace_schema import TraceFormatError

__all__ = ["load_servegen", "servegen_files"]

_CHUNK = re.compile(r"chunk-(\d+)-trace\.csv(\.gz)?$")


def servegen_files(directory: str | Path) -> list[tuple[int, Path]]:
    """``(client id, path)`` of every ``chunk-N-trace.csv[.gz]`` in ``directory``, by client id."""
    found = [(int(m.group(1)), p) for p in Path(directory).iterdir() if (m := _CHUNK.search(p.name))]
    if not found:
        raise TraceFormatError(f"{directory}: no ServeGen chunk-N-trace.csv[.gz] files")
    return sorted(found)


def _read_one(client: int, path: Path) -> pd.DataFrame:
    with open_text(path) as fh:
        raw = pd.read_csv(fh, header=None, names=list(SERVEGEN_COLUMNS), dtype=str, keep_default_na=False,
                          na_filter=False, on_bad_lines="error")
    out = pd.DataFrame({"client": client, "dist": raw["dist"].str.strip()})
    for col in ("window_start_s", "rate", "cv", "shape", "scale"):
        values = pd.to_numeric(raw[col], errors="coerce")
        # An unfitted window leaves cv/shape/scale as 0 (rate 0): only the rate and window start must parse.
        bad = values.isna() if col in ("window_start_s", "rate") else values.isna() & (raw[col] != "")
        if bad.any() or (col == "rate" and (values < 0).any()):
            line = int(np.flatnonzero(bad | (values < 0))[0]) + 1
            raise TraceFormatError(f"{path}: line {line}: {col} is not a valid number: {raw[col].iloc[line - 1]!r}")
        out[col] = values.fillna(0.0).astype("float64")
    return out[["client", *SERVEGEN_COLUMNS]]


def load_servegen(directory: str | Path) -> pd.DataFrame:
    """All clients' windows: ``client, window_start_s, rate, cv, dist, shape, scale`` (one row per window)."""
    frames = [_read_one(client, path) for client, path in servegen_files(directory)]
    return pd.concat(frames, ignore_index=True)
