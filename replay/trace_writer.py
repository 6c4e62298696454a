"""Write a normalised trace as the generic CSV (replay/README.md), gzip-compressed when the name ends in .gz."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from replay.trace_schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

__all__ = ["write_trace"]


def write_trace(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (normalised columns, optional ones when present) to ``path``; times to the microsecond.

    Arrow's CSV writer (10x pandas' ``to_csv``): text is quoted, quotes doubled, so prompts with commas,
    quotes and newlines round-trip; an empty ``response_tokens_corpus`` cell means unknown.
    """
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df]
    if missing:
        raise ValueError(f"not a normalised trace, missing columns: {', '.join(missing)}")
    out = df[[*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df)]].copy()
    out["arrival_s"] = out["arrival_s"].round(6)
    table = pa.Table.from_pandas(out, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pa_csv.WriteOptions(quoting_style="needed")
    if path.suffix == ".gz":
        with pa.CompressedOutputStream(str(path), "gzip") as sink:
            pa_csv.write_csv(table, sink, write_options=options)
    else:
        pa_csv.write_csv(table, str(path), write_options=options)
    return path
