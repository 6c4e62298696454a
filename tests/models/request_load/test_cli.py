"""``preserve load-predictor`` train -> eval round trip on a tiny encoder (the CLI module is
``preserve_cli/load_predictor_cmd.py``; its tests live with the predictor they drive)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from click.testing import CliRunner

from preserve_cli.load_predictor_cmd import load_predictor
from tests.models.request_load.conftest import synthetic_examples

EVAL_KEYS = {"mae", "acc_25", "acc_50", "acc_100", "r2", "kendall_tau"}


def test_train_then_eval_writes_the_issue_json(tiny_encoder: str, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [{**asdict(e), "response_tokens_llama2": e.output_tokens, "prompt_tokens_llama2": e.prompt_tokens}
            for e in synthetic_examples(120)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    out = tmp_path / "ck"
    runner = CliRunner()
    res = runner.invoke(load_predictor, ["train", "--data", str(data), "--out", str(out), "--epochs", "1",
                                         "--encoder", tiny_encoder, "--max-length", "48", "--n-soft", "4",
                                         "--batch-size", "16"])
    assert res.exit_code == 0, res.output
    assert "pairs.jsonl:121" in res.output  # the bad line is named
    res = runner.invoke(load_predictor, ["eval", "--data", str(data), "--model", str(out),
                                         "--json", str(tmp_path / "eval.json")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["split"] == "test"  # the file was in the checkpoint's training data
    assert set(result["model"]) == EVAL_KEYS
    assert set(result["baselines"]) == {"global_mean", "per_model_mean", "prompt_length_linear"}
    assert all(set(v) == EVAL_KEYS for v in result["baselines"].values())
    assert set(result["per_model"]) <= {"llama-2-7b-chat-hf", "gpt-3.5"} and result["per_source"]["synthetic"]["n"]


def test_eval_with_broken_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "x", "response_tokens_llama2": 3}) + "\n")
    res = CliRunner().invoke(load_predictor, ["eval", "--data", str(data), "--model", str(tmp_path / "none")])
    assert res.exit_code != 0 and "config.json" in res.output


def test_train_encoder_layers_options(tiny_encoder: str, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({**asdict(e), "response_tokens_llama2": e.output_tokens})
                              for e in synthetic_examples(60)) + "\n")
    base = ["train", "--data", str(data), "--out", str(tmp_path / "ck"), "--epochs", "1", "--encoder", tiny_encoder,
            "--max-length", "48", "--n-soft", "4", "--batch-size", "16"]
    runner = CliRunner()
    res = runner.invoke(load_predictor, [*base, "--encoder-layers", "1", "--train-last-layers", "2"])
    assert res.exit_code == 2 and "train_last_layers=2 exceeds encoder_layers=1" in res.output
    res = runner.invoke(load_predictor, [*base, "--encoder-layers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["model"]["encoder_layers"] == 1
