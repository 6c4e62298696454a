"""Pure normalisation: small hand-made raw frames in, normalised frames and bad rows out."""

from __future__ import annotations

import pandas as pd
import pytest

from replay.trace_normalize import normalize_azure, normalize_burstgpt, normalize_generic, normalize_mooncake


def _raw(rows: list[dict[str, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["_line"] = range(2, 2 + len(df))
    return df


def test_azure_sorts_rebases_and_counts_seconds() -> None:
    raw = _raw([
        {"TIMESTAMP": "2023-11-16 18:15:48.5000000", "ContextTokens": "10", "GeneratedTokens": "3"},
        {"TIMESTAMP": "2023-11-16 18:15:46.0000000", "ContextTokens": "20", "GeneratedTokens": "4"},
        {"TIMESTAMP": "2024-05-10 00:00:00.009930+00:00", "ContextTokens": "5", "GeneratedTokens": "1"},
    ])
    out = normalize_azure(raw.iloc[:2].copy(), "conv")
    assert out.bad_rows == []
    assert out.df["arrival_s"].tolist() == pytest.approx([0.0, 2.5])
    assert out.df["prompt_tokens"].tolist() == [20, 10]
    assert out.df["request_id"].tolist() == ["conv-0", "conv-1"]
    assert set(out.df["service"]) == {"conv"}
    assert normalize_azure(raw.iloc[2:].copy(), "code").df["arrival_s"].tolist() == [0.0]  # 2024 tz-aware form


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("TIMESTAMP", "yesterday", "TIMESTAMP: not an ISO date-time"),
    ("ContextTokens", "abc", "ContextTokens: not an integer"),
    ("ContextTokens", "-3", "ContextTokens: not an integer"),
    ("GeneratedTokens", "2.5", "GeneratedTokens: not an integer"),
    ("GeneratedTokens", "", "GeneratedTokens: missing value"),
])
def test_azure_bad_values_reported_with_line(field: str, value: str, reason: str) -> None:
    good = {"TIMESTAMP": "2023-11-16 18:15:46.0", "ContextTokens": "1", "GeneratedTokens": "1"}
    raw = _raw([good, good | {field: value}, good])
    out = normalize_azure(raw, "conv")
    assert len(out.df) == 2
    assert [b.line for b in out.bad_rows] == [3]
    assert out.bad_rows[0].reason.startswith(reason)


def test_mooncake_milliseconds() -> None:
    raw = _raw([{"timestamp": 0, "input_length": 100, "output_length": 7},
                {"timestamp": 1500, "input_length": 50, "output_length": 2}])
    out = normalize_mooncake(raw, "mooncake")
    assert out.df["arrival_s"].tolist() == [0.0, 1.5]
    assert out.df["output_tokens"].tolist() == [7, 2]


def test_burstgpt_failed_requests_excluded_not_bad() -> None:
    base = {"Timestamp": "5", "Model": "ChatGPT", "Request tokens": "10", "Response tokens": "20",
            "Total tokens": "30", "Log Type": "Conversation log"}
    raw = _raw([base, base | {"Timestamp": "7", "Model": "GPT-4", "Response tokens": "0"},
                base | {"Timestamp": "9", "Model": "GPT-4"}, base | {"Request tokens": "x"}])
    out = normalize_burstgpt(raw, "burstgpt")
    assert out.df["service"].tolist() == ["ChatGPT", "GPT-4"]
    assert out.df["arrival_s"].tolist() == [0.0, 4.0]
    assert [e.line for e in out.excluded] == [3]
    assert [b.line for b in out.bad_rows] == [5]


def test_generic_optional_columns_and_duplicates() -> None:
    raw = _raw([
        {"request_id": "a", "arrival_s": "1.0", "service": "s1", "prompt_tokens": "3", "output_tokens": "4",
         "prompt": "hi", "response_tokens_corpus": ""},
        {"request_id": "b", "arrival_s": "0.5", "service": "", "prompt_tokens": "1", "output_tokens": "2",
         "prompt": "yo\nthere", "response_tokens_corpus": "9"},
        {"request_id": "a", "arrival_s": "2.0", "service": "s1", "prompt_tokens": "1", "output_tokens": "1",
         "prompt": "", "response_tokens_corpus": ""},
    ])
    out = normalize_generic(raw, "default")
    assert out.df["request_id"].tolist() == ["b", "a"]
    assert out.df["service"].tolist() == ["default", "s1"]
    assert out.df["arrival_s"].tolist() == [0.0, 0.5]
    assert out.df["prompt"].tolist() == ["yo\nthere", "hi"]
    assert out.df["response_tokens_corpus"].iloc[0] == 9 and pd.isna(out.df["response_tokens_corpus"].iloc[1])
    assert [(b.line, b.reason.split(",")[0]) for b in out.bad_rows] == [(4, "request_id: duplicate id")]


def test_all_rows_bad_gives_empty_normalised_frame() -> None:
    out = normalize_mooncake(_raw([{"timestamp": "x", "input_length": 1, "output_length": 1}]), "m")
    assert out.df.empty and list(out.df.columns)[:2] == ["request_id", "arrival_s"]
    assert len(out.bad_rows) == 1
