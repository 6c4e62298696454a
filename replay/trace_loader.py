"""Read trace files (plain or gzip), detect their format, and hand the raw rows to the pure normalisers.

``load_trace`` is the one entry point (docs/INTERFACES.md). Order of operations, documented in
replay/README.md: parse + validate -> window (``start_s``/``duration_s``, seconds from the trace's first request,
*recorded* time) -> re-base to the first kept request -> divide times by ``rate_scale``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from replay.trace_normalize import (
    Normalized,
    normalize_azure,
    normalize_burstgpt,
    normalize_generic,
    normalize_mooncake,
)
from replay.trace_schema import TRACE_FORMATS, BadRow, BadRowPolicy, LoadedTrace, TraceFormatError
from replay.trace_transform import scale_rate, select_window

__all__ = ["load_trace", "detect_format", "open_text", "FORMAT_COLUMNS"]

# Columns that identify each format (all must be present in the header / first JSON object).
FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "burstgpt": ("Timestamp", "Request tokens", "Response tokens"),
    "generic": ("arrival_s", "prompt_tokens", "output_tokens"),
    "mooncake": ("timestamp", "input_length", "output_length"),
}
_NORMALIZERS: dict[str, Callable[[pd.DataFrame, str], Normalized]] = {
    "azure": normalize_azure,
    "burstgpt": normalize_burstgpt,
    "generic": normalize_generic,
    "mooncake": normalize_mooncake,
}
_SKIPPED = re.compile(r"Skipping line (\d+): (.*)")


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a text file, gunzipping it when it starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - returned to the caller


def _first_line(path: str | Path) -> str:
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                return line.strip().lstrip("\ufeff")
    raise TraceFormatError(f"{path}: empty file")


def _header_columns(path: str | Path, fmt: str) -> set[str]:
    first = _first_line(path)
    if fmt == "mooncake":
        try:
            obj = json.loads(first)
        except json.JSONDecodeError:
            return set()
        return set(obj) if isinstance(obj, dict) else set()
    return {c.strip() for c in next(csv.reader([first]))}


def detect_format(path: str | Path) -> str:
    """The trace format of ``path``, from its header (CSV) or its first JSON object (Mooncake JSONL)."""
    first = _first_line(path)
    if first.startswith("{"):
        candidates = ["mooncake"]
    else:
        candidates = ["azure", "burstgpt", "generic"]
    for fmt in candidates:
        if set(FORMAT_COLUMNS[fmt]) <= _header_columns(path, fmt):
            return fmt
    raise TraceFormatError(
        f"{path}: cannot detect the trace format from its first line {first[:120]!r}; expected one of "
        + "; ".join(f"{f}: {', '.join(c)}" for f, c in FORMAT_COLUMNS.items()) + " (or pass --format)")


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


def _read_csv(path: str | Path, header: set[str]) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    dtypes = {c: str for c in _TEXT_COLUMNS if c in header}
    with warnings.catch_warnings(record=True) as caught, open_text(path) as fh:
        warnings.simplefilter("always")
        raw = pd.read_csv(fh, dtype=dtypes, keep_default_na=False, na_filter=False, skip_blank_lines=False,
                          on_bad_lines="warn", engine="c")
    skipped = [(int(m.group(1)), m.group(2).strip()) for w in caught
               for m in _SKIPPED.finditer(str(w.message))]
    raw.columns = [str(c).strip().lstrip("\ufeff") for c in raw.columns]
    raw["_line"] = _physical_lines(raw, [n for n, _ in skipped])
    return raw, skipped


def _read_jsonl(path: str | Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
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
            records.append({k: obj.get(k) for k in FORMAT_COLUMNS["mooncake"]} | {"_line": lineno})
    columns = [*FORMAT_COLUMNS["mooncake"], "_line"]
    return pd.DataFrame.from_records(records, columns=columns), bad


def _default_service(path: str | Path, fmt: str) -> str:
    stem = Path(path).name.lower()
    if fmt == "azure":
        return "code" if "code" in stem else "conv" if "conv" in stem else "azure"
    return {"mooncake": "mooncake", "burstgpt": "burstgpt"}.get(fmt, "default")


def load_trace(path: str | Path, fmt: str | None = None, rate_scale: float = 1.0, start_s: float | None = None,
               duration_s: float | None = None, on_bad_row: BadRowPolicy = "skip",
               service: str | None = None) -> LoadedTrace:
    """Load a trace file into the normalised DataFrame.

    :param path: the trace (plain or gzip, detected from the content).
    :param fmt: ``azure``, ``mooncake``, ``burstgpt`` or ``generic``; ``None`` detects it.
    :param rate_scale: multiply the arrival rate by this: timestamps are divided by it, every request kept.
    :param start_s: keep requests from this many seconds after the first request (recorded time).
    :param duration_s: keep requests within this many seconds from ``start_s`` (recorded time).
    :param on_bad_row: ``skip`` (report in ``bad_rows``) or ``fail`` (raise ``TraceFormatError`` at the first).
    :param service: service name where the format has none (default: from the format / file name).
    """
    if fmt is None:
        fmt = detect_format(path)
    if fmt not in TRACE_FORMATS:
        raise TraceFormatError(f"unknown trace format {fmt!r}; expected one of {', '.join(TRACE_FORMATS)}")
    header = _header_columns(path, fmt)
    missing = set(FORMAT_COLUMNS[fmt]) - header
    if missing:
        raise TraceFormatError(f"{path}: not a {fmt} trace, line 1 lacks {', '.join(sorted(missing))}")
    raw, unparsed = _read_jsonl(path) if fmt == "mooncake" else _read_csv(path, header)
    norm = _NORMALIZERS[fmt](raw, service or _default_service(path, fmt))
    bad_rows = sorted([BadRow(n, r) for n, r in unparsed] + norm.bad_rows, key=lambda b: b.line)
    if bad_rows and on_bad_row == "fail":
        raise TraceFormatError(f"{path}: line {bad_rows[0].line}: {bad_rows[0].reason}")
    df, outside = select_window(norm.df, start_s, duration_s)
    return LoadedTrace(scale_rate(df, rate_scale), fmt, bad_rows, norm.excluded, outside)
