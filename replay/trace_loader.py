"""Read trace files (plain or gzip), detect their format, and hand the raw rows to the pure normalisers.

``load_trace`` is the one entry point (docs/INTERFACES.md). Order of operations, documented in
replay/README.md: parse + validate -> window (``start_s``/``duration_s``, seconds from the trace's first request,
*recorded* time) -> re-base to the first kept request -> divide times by ``rate_scale``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from replay.raw_readers import open_text, read_csv_rows, read_jsonl_rows
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


def _first_line(path: str | Path) -> str:
    """Line 1 (a CSV's header, a JSONL's first object): it identifies the format, so it must not be blank."""
    with open_text(path) as fh:
        first = fh.readline().strip().lstrip("\ufeff").strip()
    if not first:
        raise TraceFormatError(f"{path}: line 1 is empty (a trace starts with its header or first record)")
    return first


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
    if fmt == "mooncake":
        raw, unparsed = read_jsonl_rows(path, FORMAT_COLUMNS["mooncake"])
    else:
        raw, unparsed = read_csv_rows(path, header)
    norm = _NORMALIZERS[fmt](raw, service or _default_service(path, fmt))
    bad_rows = sorted([BadRow(n, r) for n, r in unparsed] + norm.bad_rows, key=lambda b: b.line)
    if bad_rows and on_bad_row == "fail":
        raise TraceFormatError(f"{path}: line {bad_rows[0].line}: {bad_rows[0].reason}")
    df, outside = select_window(norm.df, start_s, duration_s)
    return LoadedTrace(scale_rate(df, rate_scale), fmt, bad_rows, norm.excluded, outside)
