"""Write a normalised trace as the generic CSV (replay/README.md), gzip-compressed when the name ends in .gz."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from replay.trace_schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

__all__ = ["write_trace"]


def write_trace(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (normalised columns, optional ones when present) to ``path``; times to the microsecond."""
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df]
    if missing:
        raise ValueError(f"not a normalised trace, missing columns: {', '.join(missing)}")
    columns = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df)]
    path.parent.mkdir(parents=True, exist_ok=True)
    compression = "gzip" if path.suffix == ".gz" else None
    df[columns].to_csv(path, index=False, float_format="%.6f", compression=compression)
    return path
