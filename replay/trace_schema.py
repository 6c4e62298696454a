"""The normalised trace every loader produces (docs/INTERFACES.md) and the types around it.

A normalised trace is a pandas DataFrame with one row per request, sorted by arrival:
``request_id: str, arrival_s: float (seconds since the first request), service: str, prompt_tokens: int,
output_tokens: int`` plus, when known, ``prompt: str`` and ``response_tokens_corpus: int``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "TRACE_FORMATS",
    "TraceFormat",
    "BadRowPolicy",
    "BadRow",
    "LoadedTrace",
    "TraceFormatError",
    "empty_trace",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("request_id", "arrival_s", "service", "prompt_tokens", "output_tokens")
OPTIONAL_COLUMNS: tuple[str, ...] = ("prompt", "response_tokens_corpus", "model")

TraceFormat = Literal["azure", "mooncake", "burstgpt", "generic"]
TRACE_FORMATS: tuple[str, ...] = ("azure", "mooncake", "burstgpt", "generic")
BadRowPolicy = Literal["skip", "fail"]


class TraceFormatError(ValueError):
    """A trace file that cannot be read: unknown format, or a bad row under ``on_bad_row="fail"``."""


@dataclass(frozen=True)
class BadRow:
    """A row that was not loaded, with its 1-based line number in the (decompressed) file and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class LoadedTrace:
    """A loaded trace.

    :param df: the normalised DataFrame (columns above).
    :param fmt: the format it was read as (detected or forced).
    :param bad_rows: rows that could not be parsed or failed validation (not in ``df``).
    :param excluded: valid rows deliberately left out by the format's rules (BurstGPT failed requests), so that
        every row of the file is accounted for: ``len(df) + len(bad_rows) + len(excluded)`` + rows outside the
        ``start``/``duration`` window = data rows of the file.
    :param outside_window: how many valid rows the ``start_s``/``duration_s`` window cut away.
    """

    df: pd.DataFrame
    fmt: str
    bad_rows: list[BadRow] = field(default_factory=list)
    excluded: list[BadRow] = field(default_factory=list)
    outside_window: int = 0


def empty_trace() -> pd.DataFrame:
    """A normalised trace with no rows (right columns and dtypes)."""
    return pd.DataFrame({
        "request_id": pd.Series([], dtype=object),
        "arrival_s": pd.Series([], dtype="float64"),
        "service": pd.Series([], dtype=object),
        "prompt_tokens": pd.Series([], dtype="int64"),
        "output_tokens": pd.Series([], dtype="int64"),
    })
