"""Raw rows of trace files, each with its 1-based line number (``_line``), plus the lines that did not parse.

CSV: a fast multi-threaded pyarrow read when the file is well formed (no ragged rows, no quoted newlines),
else pandas' C reader, which skips ragged rows and reports their line numbers. JSON lines: one object per line.
Values are left as read (text or numbers): validation is the normalisers' job.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

__all__ = ["open_text", "read_csv_rows", "read_jsonl_rows", "is_gzip"]

_SKIPPED = re.compile(r"Skipping line (\d+): (.*)")


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a text file, gunzipping it when it starts with the gzip magic bytes (whatever its name)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - returned to the caller


def _physical_lines(raw: pd.DataFrame, skipped: list[int]) -> np.ndarray:
    """1-based file line of each parsed row: header is line 1; skipped lines and quoted newlines shift rows."""
    text_cols = [c for c in raw.columns if raw[c].dtype == object or pd.api.types.is_string_dtype(raw[c])]
    newlines = np.zeros(len(raw), dtype=np.int64)
    if "prompt" in raw:  # only free text can hold quoted newlines
        for col in text_cols:
            newlines += raw[col].astype(str).str.count("\n").to_numpy(dtype=np.int64)
    if not skipped:
        return 2 + np.concatenate([[0], np.cumsum(1 + newlines)[:-1]]) if len(raw) else np.zeros(0, np.int64)
    lines = np.empty(len(raw), dtype=np.int64)
    skip, nxt = set(skipped), 2
    for i in range(len(raw)):
        while nxt in skip:
            nxt += 1
        lines[i] = nxt
        nxt += 1 + int(newlines[i])
    return lines


# Columns read as text whatever they look like (ids like "007" must stay strings); others are parsed as
# numbers by the C reader when every value is one (fast path), else left as text for the normaliser to flag.
_TEXT_COLUMNS = ("TIMESTAMP", "Model", "Log Type", "request_id", "service", "prompt", "model")


def _read_csv_c(path: str | Path, header: set[str]) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    dtypes = {c: object for c in _TEXT_COLUMNS if c in header}  # object: faster to read than pandas' str
    with warnings.catch_warnings(record=True) as caught, open_text(path) as fh:
        warnings.simplefilter("always")
        raw = pd.read_csv(fh, dtype=dtypes, keep_default_na=False, na_filter=False, skip_blank_lines=False,
                          on_bad_lines="warn", engine="c")
    skipped = [(int(m.group(1)), m.group(2).strip()) for w in caught
               for m in _SKIPPED.finditer(str(w.message))]
    raw.columns = [str(c).strip().lstrip("\ufeff") for c in raw.columns]
    raw["_line"] = _physical_lines(raw, [n for n, _ in skipped])
    return raw, skipped


def _read_csv_arrow(path: str | Path, header: set[str]) -> pd.DataFrame | None:
    """Every row of a well-formed CSV, or None when a row is ragged or a value breaks its column's type.

    Blank lines are kept as empty rows so that row i is line i + 2; quoted newlines are refused (they would
    shift lines), so files with free text (a ``prompt`` column) go to the C reader directly.
    """
    if "prompt" in header:
        return None
    text = [c for c in _TEXT_COLUMNS if c in header]
    try:
        stream = pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)
        table = pa_csv.read_csv(
            stream,
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=False, newlines_in_values=False),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in text},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    raw = table.to_pandas()
    raw.columns = [str(c).strip().lstrip("\ufeff") for c in raw.columns]
    raw["_line"] = np.arange(2, len(raw) + 2, dtype=np.int64)
    return raw


def read_csv_rows(path: str | Path, header: set[str]) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Raw rows of a CSV with a header line (+ ``_line``) and the ragged lines skipped (line, reason)."""
    raw = _read_csv_arrow(path, header)
    return (raw, []) if raw is not None else _read_csv_c(path, header)


def read_jsonl_rows(path: str | Path, fields: tuple[str, ...]) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Raw rows of a JSON-lines file (``fields`` + ``_line``) and the unparseable lines (line, reason)."""
    records: list[dict[str, object]] = []
    bad: list[tuple[int, str]] = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append((lineno, f"invalid JSON: {exc.msg}"))
                continue
            if not isinstance(obj, dict):
                bad.append((lineno, "not a JSON object"))
                continue
            records.append({k: obj.get(k) for k in fields} | {"_line": lineno})
    columns = [*fields, "_line"]
    return pd.DataFrame.from_records(records, columns=columns), bad


