"""Loaders on small hand-made files: plain and gzip, detection, bad rows, window and rate-scale semantics."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from replay.trace_loader import detect_format, load_trace
from replay.trace_schema import TraceFormatError
from replay.trace_writer import write_trace

AZURE = ("TIMESTAMP,ContextTokens,GeneratedTokens\n"
         "2023-11-16 18:15:46.0000000,100,10\n"
         "2023-11-16 18:15:47.0000000,200,20\n"
         "2023-11-16 18:15:49.0000000,300,30\n"
         "2023-11-16 18:15:56.0000000,400,40\n")
BURSTGPT = ("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
            "5,ChatGPT,472,18,490,Conversation log\n"
            "45,GPT-4,1087,0,1087,API log\n"
            "118,ChatGPT,417,276,693,Conversation log\n")
GENERIC = ("request_id,arrival_s,service,prompt_tokens,output_tokens\n"
           "r1,0.0,chat,10,5\n"
           "r2,1.5,chat,20,6\n")
MOONCAKE = "".join(json.dumps({"timestamp": t, "input_length": i, "output_length": o, "hash_ids": [1]}) + "\n"
                   for t, i, o in [(0, 100, 5), (250, 200, 6), (1000, 300, 7)])


def _write(tmp_path: Path, name: str, text: str, gz: bool) -> Path:
    path = tmp_path / (name + (".gz" if gz else ""))
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(("name", "text", "fmt", "rows"), [
    ("AzureLLMInferenceTrace_conv.csv", AZURE, "azure", 4),
    ("burst.csv", BURSTGPT, "burstgpt", 2),
    ("trace.csv", GENERIC, "generic", 2),
    ("mooncake_trace.jsonl", MOONCAKE, "mooncake", 3),
])
def test_each_format_detected_plain_and_gzip(tmp_path: Path, gz: bool, name: str, text: str, fmt: str,
                                             rows: int) -> None:
    path = _write(tmp_path, name, text, gz)
    assert detect_format(path) == fmt
    loaded = load_trace(path)
    assert loaded.fmt == fmt and len(loaded.df) == rows and loaded.bad_rows == []
    assert loaded.df["arrival_s"].iloc[0] == 0.0 and loaded.df["arrival_s"].is_monotonic_increasing
    assert loaded.df["request_id"].is_unique


def test_azure_service_from_file_name_and_times(tmp_path: Path) -> None:
    df = load_trace(_write(tmp_path, "AzureLLMInferenceTrace_conv.csv", AZURE, False)).df
    assert df["arrival_s"].tolist() == [0.0, 1.0, 3.0, 10.0]
    assert set(df["service"]) == {"conv"}


def test_mooncake_ms_and_burstgpt_failed_excluded(tmp_path: Path) -> None:
    assert load_trace(_write(tmp_path, "m.jsonl", MOONCAKE, False)).df["arrival_s"].tolist() == [0.0, 0.25, 1.0]
    loaded = load_trace(_write(tmp_path, "b.csv", BURSTGPT, True))
    assert [e.line for e in loaded.excluded] == [3] and loaded.bad_rows == []
    assert loaded.df["arrival_s"].tolist() == [0.0, 113.0]


def test_format_override_and_unknown_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", GENERIC, False)
    with pytest.raises(TraceFormatError, match="not a azure trace"):
        load_trace(path, fmt="azure")
    unknown = _write(tmp_path, "y.csv", "a,b,c\n1,2,3\n", False)
    with pytest.raises(TraceFormatError, match="cannot detect"):
        detect_format(unknown)


def test_bad_rows_listed_with_line_numbers_or_fail(tmp_path: Path) -> None:
    text = AZURE + "2023-11-16 18:15:57.0,abc,1\n2023-11-16 18:15:58.0,1,2,3\n\n2023-11-16 18:15:59.0,5,5\n"
    path = _write(tmp_path, "az.csv", text, True)
    loaded = load_trace(path, on_bad_row="skip")
    assert [b.line for b in loaded.bad_rows] == [6, 7, 8]
    assert "ContextTokens" in loaded.bad_rows[0].reason and "fields" in loaded.bad_rows[1].reason
    assert len(loaded.df) == 5 and loaded.df["prompt_tokens"].iloc[-1] == 5
    with pytest.raises(TraceFormatError, match=r"line 6: ContextTokens"):
        load_trace(path, on_bad_row="fail")


def test_mooncake_bad_json_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.jsonl", MOONCAKE + "{not json\n" + '{"timestamp": 5, "input_length": -1, '
                  '"output_length": 1}\n', False)
    loaded = load_trace(path)
    assert [(b.line, b.reason.split(":")[0]) for b in loaded.bad_rows] == [(4, "invalid JSON"), (5, "input_length")]


def test_quoted_newlines_keep_physical_line_numbers(tmp_path: Path) -> None:
    text = ('arrival_s,prompt_tokens,output_tokens,prompt\n0,1,1,"two\nlines"\n1,x,1,plain\n'
            '2,1,1,"a\nb\nc"\n3,1,y,z\n')
    loaded = load_trace(_write(tmp_path, "g.csv", text, False))
    assert [b.line for b in loaded.bad_rows] == [4, 8]
    assert loaded.df["prompt"].tolist() == ["two\nlines", "a\nb\nc"]


def test_window_then_rate_scale(tmp_path: Path) -> None:
    path = _write(tmp_path, "AzureLLMInferenceTrace_code.csv", AZURE, False)  # arrivals 0, 1, 3, 10 s
    loaded = load_trace(path, start_s=1.0, duration_s=5.0)  # recorded [1, 6): keeps 1 and 3, re-based
    assert loaded.df["arrival_s"].tolist() == [0.0, 2.0] and loaded.outside_window == 2
    scaled = load_trace(path, start_s=1.0, duration_s=5.0, rate_scale=4.0)  # window on recorded time first
    assert scaled.df["arrival_s"].tolist() == [0.0, 0.5]
    slow = load_trace(path, rate_scale=0.5)
    assert slow.df["arrival_s"].tolist() == [0.0, 2.0, 6.0, 20.0]  # every request kept
    with pytest.raises(ValueError):
        load_trace(path, rate_scale=0.0)


def test_written_generic_round_trips(tmp_path: Path) -> None:
    df = load_trace(_write(tmp_path, "AzureLLMInferenceTrace_conv.csv", AZURE, False)).df
    back = load_trace(write_trace(df, tmp_path / "out.csv.gz"))
    assert back.fmt == "generic"
    assert back.df.to_dict("list") == df.to_dict("list")


def test_fast_and_fallback_readers_agree(tmp_path: Path) -> None:
    clean = load_trace(_write(tmp_path, "clean.csv", AZURE + "\n2023-11-16 18:15:59.0,5,5\n", False))
    ragged = load_trace(_write(tmp_path, "ragged.csv", AZURE + "\n2023-11-16 18:15:59.0,5,5\n1,2,3,4\n", False))
    assert [b.line for b in clean.bad_rows] == [6]  # the blank line, found by the fast reader
    assert [b.line for b in ragged.bad_rows] == [6, 8]  # ... and by the fallback, plus the ragged row
    assert clean.df.to_dict("list") == ragged.df.to_dict("list")


def test_offset_and_naive_timestamps_mixed(tmp_path: Path) -> None:
    text = AZURE.replace("2023-11-16 18:15:46.0000000", "2023-11-16 19:15:45.0+01:00")  # = 18:15:45 UTC
    plain = load_trace(_write(tmp_path, "a.csv", text, False))
    packed = load_trace(_write(tmp_path, "b.csv", text, True))
    assert plain.bad_rows == [] and plain.df["arrival_s"].tolist() == [0.0, 2.0, 4.0, 11.0]
    assert plain.df.to_dict("list") == packed.df.to_dict("list")


def test_empty_first_line_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="line 1 is empty"):
        load_trace(_write(tmp_path, "e.csv", "\n" + GENERIC, False))
