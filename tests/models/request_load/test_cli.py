"""``preserve load-predictor`` train -> eval round trip on a tiny encoder (the CLI module is
``preserve_cli/load_predictor_cmd.py``; its tests live with the predictor they drive)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
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


def test_calibrate_then_eval_reports_coverage_sums_and_the_interval(tiny_encoder: str, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({**asdict(e), "response_tokens_llama2": e.output_tokens})
                              for e in synthetic_examples(240)) + "\n")
    out = tmp_path / "ck"
    runner = CliRunner()
    res = runner.invoke(load_predictor, ["train", "--data", str(data), "--out", str(out), "--epochs", "1",
                                         "--encoder", tiny_encoder, "--max-length", "48", "--n-soft", "4",
                                         "--batch-size", "16", "--val-frac", "0.3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(load_predictor, ["eval", "--data", str(data), "--model", str(out),
                                         "--json", str(tmp_path / "raw.json")])
    assert res.exit_code == 0, res.output
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert raw["calibrated"]["model"] is False and raw["calibrated"]["fallback"] is False
    assert set(raw["coverage"]) == {"p90"}
    res = runner.invoke(load_predictor, ["calibrate", "--data", str(data), "--model", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "calibration.json").is_file()
    res = runner.invoke(load_predictor, ["eval", "--data", str(data), "--model", str(out),
                                         "--json", str(tmp_path / "eval.json")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "eval.json").read_text())
    names = ["p10", "p20", "p30", "p40", "p50", "p60", "p70", "p80", "p90", "p95", "p99"]
    assert result["calibrated"]["model"] and result["calibrated"]["fallback"] and result["point_estimate"] == "p50"
    for block in (result, result["fallback"]):
        assert list(block["coverage"]) == names
        assert all(0.0 <= v <= 1.0 for v in block["coverage"].values())
        assert block["mean_sum_ratio"] > 0 and set(block["mean_sum_ratio_per_model"]) == set(result["per_model"])
        lo, hi = block["mae_ratio_ci95"]
        assert lo <= block.get("mae_ratio_to_best_baseline", result["mae_ratio_to_best_baseline"]) <= hi
    assert set(result["per_model"]["gpt-3.5"]["coverage"]) == set(names)
    res = runner.invoke(load_predictor, ["eval", "--data", str(data), "--model", str(out), "--as-model",
                                         "never-seen-7b", "--json", str(tmp_path / "unseen.json")])
    assert res.exit_code == 0, res.output
    unseen = json.loads((tmp_path / "unseen.json").read_text())
    assert unseen["as_model"] == "never-seen-7b" and set(unseen["per_model"]) == set(result["per_model"])
    # the file must be the checkpoint's training data: its validation part is defined only there
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text())
    res = runner.invoke(load_predictor, ["calibrate", "--data", str(other), "--model", str(out)])
    assert res.exit_code == 2 and "training data" in res.output


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


@pytest.fixture(scope="module")
def trained(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data file, checkpoint) of a 1-epoch tiny model at max_length 48 with 4 soft-prompt vectors."""
    folder = tmp_path_factory.mktemp("eval_engine")
    data = folder / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({**asdict(e), "response_tokens_llama2": e.output_tokens})
                              for e in synthetic_examples(80)) + "\n")
    res = CliRunner().invoke(load_predictor, ["train", "--data", str(data), "--out", str(folder / "ck"), "--epochs",
                                              "1", "--encoder", tiny_encoder, "--max-length", "48", "--n-soft", "4",
                                              "--batch-size", "16"])
    assert res.exit_code == 0, res.output
    return data, folder / "ck"


def _eval(trained: tuple[Path, Path], out: Path, *extra: str) -> dict[str, Any]:
    data, ck = trained
    res = CliRunner().invoke(load_predictor, ["eval", "--data", str(data), "--model", str(ck), "--split", "all",
                                              "--json", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_eval_records_the_engine_and_max_length_truncates_rows(trained: tuple[Path, Path], tmp_path: Path) -> None:
    full = _eval(trained, tmp_path / "full.json")
    assert full["engine"] == {"device": "cpu", "dtype": "float32", "backend": "torch", "int8": False,
                              "max_length": 48}  # the checkpoint's
    assert full["dtype"] == "fp32" and full["point_estimate"]  # the existing keys stay
    assert _eval(trained, tmp_path / "same.json", "--max-length", "48")["model"] == full["model"]  # deterministic
    # 21, the floor (4 soft + [CLS] + <= 12 name pieces + [SEP] + prompt + [SEP]): most prompts lose words
    cut = _eval(trained, tmp_path / "cut.json", "--max-length", "21")
    assert cut["engine"]["max_length"] == 21
    assert cut["model"] != full["model"]


def test_eval_onnx_int8_is_close_to_torch_fp32(trained: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        pytest.skip("onnxruntime/onnx not installed (the cpu extra: pip install -e '.[cpu]')")
    monkeypatch.setenv("PRESERVE_ONNX_CACHE", str(tmp_path / "onnx"))
    ref = _eval(trained, tmp_path / "torch.json")
    q8 = _eval(trained, tmp_path / "onnx.json", "--backend", "onnx", "--int8")
    assert q8["engine"] == {**ref["engine"], "backend": "onnx", "int8": True}
    assert q8["model"]["mae"] == pytest.approx(ref["model"]["mae"], rel=0.05)
    assert q8["p90_coverage"] == pytest.approx(ref["p90_coverage"], abs=0.05)


@pytest.mark.parametrize(("extra", "message"), [
    (["--backend", "onnx", "--device", "cuda"], "--backend onnx: CPU serving only; use --device cpu"),
    (["--int8", "--device", "cuda:0"], "--int8: CPU serving only; use --device cpu"),
    (["--backend", "onnx", "--dtype", "bf16"], "runs from fp32 weights; use --dtype fp32 or auto"),
    (["--max-length", "20"], "20 is outside [21, 48]"),
    (["--max-length", "49"], "49 is outside [21, 48]"),
])
def test_eval_rejects_engine_settings_it_cannot_run(trained: tuple[Path, Path], extra: list[str],
                                                    message: str) -> None:
    data, ck = trained
    res = CliRunner().invoke(load_predictor, ["eval", "--data", str(data), "--model", str(ck), *extra])
    assert res.exit_code == 2 and message in res.output, res.output


def test_eval_onnx_without_onnxruntime_says_how_to_install(trained: tuple[Path, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.request_load.onnx_backend.onnx_available", lambda: False)
    data, ck = trained
    res = CliRunner().invoke(load_predictor, ["eval", "--data", str(data), "--model", str(ck), "--backend", "onnx"])
    assert res.exit_code == 2 and "pip install -e '.[cpu]'" in res.output, res.output
