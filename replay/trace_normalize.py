"""Pure ``DataFrame -> DataFrame`` normalisation of each trace format into the normalised trace.

Every function takes the *raw* rows as read from the file (strings or numbers, one column per field, plus a
``_line`` column with each row's 1-based line number in the file) and returns a :class:`Normalized`: the
normalised DataFrame (sorted by arrival, ``arrival_s`` re-based to 0 at the first valid request) and the rows it
rejected, each with its line number and the reason. No I/O here: the loaders in ``trace_loader`` read files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute

from replay.trace_schema import BadRow, empty_trace

__all__ = [
    "MAX_TOKENS",
    "Normalized",
    "normalize_azure",
    "normalize_mooncake",
    "normalize_burstgpt",
    "normalize_generic",
]

MAX_TOKENS = 1_000_000  # same bound as streams.records.Tokens: a larger count is a corrupt row, not a request


@dataclass(frozen=True)
class Normalized:
    df: pd.DataFrame
    bad_rows: list[BadRow] = field(default_factory=list)
    excluded: list[BadRow] = field(default_factory=list)


class _Reasons:
    """First reason each row is rejected for (a row is reported once, with the first problem found)."""

    def __init__(self, raw: pd.DataFrame) -> None:
        self._raw = raw
        self.reason = pd.Series(np.full(len(raw), None, dtype=object), index=raw.index)

    def flag(self, mask: pd.Series, column: str, what: str) -> None:
        new = mask & self.reason.isna()
        if not new.any():
            return
        if column in self._raw:
            shown = self._raw.loc[new, column].map(lambda v: repr(v)[:60]).astype(str)
            self.reason[new] = f"{column}: {what}, got " + shown
        else:
            self.reason[new] = f"{column}: {what} (no such column)"

    def ok(self) -> pd.Series:
        return self.reason.isna()

    def bad_rows(self, lines: pd.Series) -> list[BadRow]:
        bad = ~self.ok()
        return [BadRow(int(n), str(r)) for n, r in zip(lines[bad], self.reason[bad], strict=True)]


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    return raw[name] if name in raw else pd.Series(np.full(len(raw), None, dtype=object), index=raw.index)


def _tokens(raw: pd.DataFrame, name: str, reasons: _Reasons) -> pd.Series:
    """Non-negative integer token counts; anything else is flagged (``"12.0"`` is accepted as 12)."""
    col = _column(raw, name)
    values = pd.to_numeric(col, errors="coerce").astype("float64")
    # A column the CSV reader already parsed as numbers has no blanks: skip the (slow) string check.
    missing = col.isna() if pd.api.types.is_numeric_dtype(col) else col.isna() | (col.astype(str).str.strip() == "")
    reasons.flag(missing, name, "missing value")
    good = values.notna() & (values >= 0) & (values <= MAX_TOKENS) & (values == np.floor(values))
    reasons.flag(~good, name, f"not an integer in [0, {MAX_TOKENS}]")
    return values


def _seconds(values: pd.Series, name: str, reasons: _Reasons, unit_s: float) -> pd.Series:
    secs = pd.to_numeric(values, errors="coerce").astype("float64") * unit_s
    reasons.flag(~np.isfinite(secs), name, "not a finite number")
    return secs


def _finish(raw: pd.DataFrame, arrival: pd.Series, service: pd.Series | str, prompt_tokens: pd.Series,
            output_tokens: pd.Series, reasons: _Reasons, id_prefix: str,
            request_id: pd.Series | None = None, extra: dict[str, pd.Series] | None = None,
            excluded: pd.Series | None = None, excluded_reason: str = "") -> Normalized:
    """Assemble, sort by arrival (stable, so ties keep file order) and re-base time to the first request."""
    ok = reasons.ok()
    lines = raw["_line"]
    bad_rows = reasons.bad_rows(lines)
    excluded_rows: list[BadRow] = []
    if excluded is not None:
        drop = ok & excluded
        excluded_rows = [BadRow(int(n), excluded_reason) for n in lines[drop]]
        ok = ok & ~drop
    if not ok.any():
        return Normalized(empty_trace(), bad_rows, excluded_rows)
    order = np.argsort(arrival[ok].to_numpy(), kind="stable")
    arr = arrival[ok].to_numpy()[order]
    df = pd.DataFrame({
        "request_id": (request_id[ok].to_numpy(dtype=object)[order] if request_id is not None
                       else _ids(id_prefix, len(arr))),
        "arrival_s": arr - arr[0],
        "service": (np.full(len(arr), service, dtype=object) if isinstance(service, str)
                    else service[ok].to_numpy(dtype=object)[order]),
        "prompt_tokens": prompt_tokens[ok].to_numpy()[order].astype("int64"),
        "output_tokens": output_tokens[ok].to_numpy()[order].astype("int64"),
    })
    for name, col in (extra or {}).items():
        df[name] = col[ok].iloc[order].reset_index(drop=True)
    return Normalized(df, bad_rows, excluded_rows)


def _iso_stamps(values: pd.Series) -> pd.Series:
    """UTC timestamps; naive ones are taken as UTC. Arrow's vectorised parser first (10x faster), pandas'
    per-value parser when arrow refuses the column (a malformed or mixed value: it becomes NaT)."""
    for unit_type in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            parsed = pa_compute.cast(pa.array(values, type=pa.string()), unit_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        stamps = parsed.to_pandas()
        stamps.index = values.index
        return stamps if stamps.dt.tz is not None else stamps.dt.tz_localize("UTC")
    return pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")


def _ids(prefix: str, n: int) -> np.ndarray:
    """``<prefix>-0 .. <prefix>-(n-1)``, built by arrow (a Python loop takes ~1 s per 2M ids)."""
    numbers = pa_compute.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    return np.asarray(pa_compute.binary_join_element_wise(f"{prefix}-", numbers, "").to_pandas())


def normalize_azure(raw: pd.DataFrame, service: str) -> Normalized:
    """Azure LLM inference trace 2023/2024: ``TIMESTAMP`` (ISO date-time), ``ContextTokens``, ``GeneratedTokens``."""
    reasons = _Reasons(raw)
    stamps = _iso_stamps(_column(raw, "TIMESTAMP"))
    reasons.flag(stamps.isna(), "TIMESTAMP", "not an ISO date-time")
    # Offsets in integer ns from the earliest stamp, then seconds: exact to the ns (epoch floats are not).
    valid = stamps.notna().to_numpy()
    ns = stamps.dt.tz_convert(None).astype("datetime64[ns]").to_numpy().astype("int64")
    base = ns[valid].min() if valid.any() else 0
    arrival = pd.Series(np.where(valid, (ns - base) / 1e9, np.nan), index=raw.index)
    prompt = _tokens(raw, "ContextTokens", reasons)
    output = _tokens(raw, "GeneratedTokens", reasons)
    return _finish(raw, arrival, service, prompt, output, reasons, service)


def normalize_mooncake(raw: pd.DataFrame, service: str) -> Normalized:
    """Mooncake JSONL: ``timestamp`` (ms since the trace start), ``input_length``, ``output_length``."""
    reasons = _Reasons(raw)
    arrival = _seconds(_column(raw, "timestamp"), "timestamp", reasons, 1e-3)
    prompt = _tokens(raw, "input_length", reasons)
    output = _tokens(raw, "output_length", reasons)
    return _finish(raw, arrival, service, prompt, output, reasons, service)


def normalize_burstgpt(raw: pd.DataFrame, service: str) -> Normalized:
    """BurstGPT: ``Timestamp`` (s), ``Model``, ``Request tokens``, ``Response tokens``, ``Total tokens``, ``Log Type``.

    ``service`` is the ``Model`` column (ChatGPT, GPT-4), the unit PreServe forecasts and routes for. Failed
    requests (``Response tokens`` = 0) are *excluded* and listed in ``excluded``: they carry no output length, a
    simulator cannot serve them faithfully, and BurstGPT's own analysis treats them apart; they are not bad rows.
    """
    reasons = _Reasons(raw)
    arrival = _seconds(_column(raw, "Timestamp"), "Timestamp", reasons, 1.0)
    model = _column(raw, "Model").astype(str).str.strip()
    reasons.flag(_column(raw, "Model").isna() | (model == ""), "Model", "missing value")
    prompt = _tokens(raw, "Request tokens", reasons)
    output = _tokens(raw, "Response tokens", reasons)
    failed = output == 0
    return _finish(raw, arrival, model, prompt, output, reasons, service, excluded=failed,
                   excluded_reason="failed request (Response tokens = 0): excluded")


def normalize_generic(raw: pd.DataFrame, service: str) -> Normalized:
    """Generic CSV (see replay/README.md): the normalised columns themselves.

    Required: ``arrival_s``, ``prompt_tokens``, ``output_tokens``. Optional: ``request_id`` (default: generated,
    must be unique), ``service`` (default: ``service``), ``prompt``, ``response_tokens_corpus`` (may be empty),
    ``model``.
    """
    reasons = _Reasons(raw)
    arrival = _seconds(_column(raw, "arrival_s"), "arrival_s", reasons, 1.0)
    prompt_tokens = _tokens(raw, "prompt_tokens", reasons)
    output_tokens = _tokens(raw, "output_tokens", reasons)
    svc: pd.Series | str = service
    if "service" in raw:
        named = raw["service"].fillna("").astype(str).str.strip()
        svc = named.where(named != "", service)
    request_id = None
    if "request_id" in raw:
        request_id = raw["request_id"].fillna("").astype(str).str.strip()
        reasons.flag(request_id == "", "request_id", "missing value")
        reasons.flag(request_id.duplicated() & (request_id != ""), "request_id", "duplicate id")
    extra: dict[str, pd.Series] = {}
    if "prompt" in raw:
        extra["prompt"] = raw["prompt"].fillna("").astype(str)
    if "response_tokens_corpus" in raw:
        col = raw["response_tokens_corpus"]
        blank = col.isna() | (col.astype(str).str.strip() == "")
        values = pd.to_numeric(col.where(~blank), errors="coerce")
        reasons.flag(~blank & ~(values.notna() & (values >= 0) & (values == np.floor(values))),
                     "response_tokens_corpus", "not an integer or empty")
        extra["response_tokens_corpus"] = values.astype("Int64")
    if "model" in raw:
        extra["model"] = raw["model"].fillna("").astype(str)
    return _finish(raw, arrival, svc, prompt_tokens, output_tokens, reasons, service, request_id, extra)
