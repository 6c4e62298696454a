"""``preserve trace info|convert|attach-prompts`` and ``preserve synth`` end to end on tiny files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from preserve_cli.trace_cmd import synth, trace
from replay.trace_loader import load_trace

AZURE = ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.0,100,10\n2023-11-16 18:15:47.0,bad,20\n"
         "2023-11-16 18:15:49.0,300,30\n")


def test_info_reports_stats_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(AZURE)
    result = CliRunner().invoke(trace, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "rows            2" in result.output and f"{path}:3: ContextTokens" in result.output
    listing = tmp_path / "bad.csv"
    assert CliRunner().invoke(trace, ["info", str(path), "--bad-rows", str(listing)]).exit_code == 0
    assert listing.read_text().splitlines()[1].startswith('3,bad,"ContextTokens')
    failed = CliRunner().invoke(trace, ["info", str(path), "--on-bad-row", "fail"])
    assert failed.exit_code != 0 and "line 3: ContextTokens" in failed.output


def test_convert_and_attach_prompts(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(AZURE)
    out = tmp_path / "g.csv"
    assert CliRunner().invoke(trace, ["convert", str(path), "--rate-scale", "3", "--out", str(out)]).exit_code == 0
    assert load_trace(out).df["arrival_s"].tolist() == [0.0, 1.0]
    corpus = tmp_path / "p.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": f"p{i}", "prompt_tokens_llama2": i, "response_tokens_llama2":
                                          10 * i, "model": "m"}) + "\n" for i in (1, 2)))
    attached = tmp_path / "withp.csv.gz"
    result = CliRunner().invoke(trace, ["attach-prompts", str(out), "--prompts", str(corpus), "--lengths",
                                        "corpus", "--out", str(attached)])
    assert result.exit_code == 0, result.output
    df = load_trace(attached).df
    assert df["prompt"].tolist() == ["p1", "p2"] and df["output_tokens"].tolist() == [10, 20]


def test_synth_writes_generic_trace(tmp_path: Path) -> None:
    folder = tmp_path / "m-test"
    folder.mkdir()
    with gzip.open(folder / "chunk-0-trace.csv.gz", "wt") as fh:
        fh.write("0,2.0,1.0,Gamma,1.0,0.5\n600,1.0,2.0,Weibull,0.5,1.0\n")
    lengths = tmp_path / "l.csv"
    lengths.write_text("arrival_s,prompt_tokens,output_tokens\n0,5,6\n")
    out = tmp_path / "s.csv"
    args = ["--servegen", str(folder), "--hours", "0.3333333334", "--time-scale", "2", "--lengths", str(lengths),
            "--seed", "3", "--out", str(out)]
    result = CliRunner().invoke(synth, args)
    assert result.exit_code == 0, result.output
    df = load_trace(out).df
    assert len(df) == 600 + 300 and df["arrival_s"].max() < 600  # (2*600 + 1*600) / T=2
    assert set(df["service"]) == {"m-test"} and set(df["prompt_tokens"]) == {5}
