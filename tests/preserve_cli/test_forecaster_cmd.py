from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from preserve_cli.forecaster_cmd import forecaster


def _density_csv(path: Path, n: int = 120) -> Path:
    t = np.arange(n)
    req = (50 + 20 * np.sin(2 * np.pi * t / 24)).astype(int)
    path.write_text("window_start,requests,prompt_tokens,output_tokens\n"
                    + "".join(f"{i * 3600},{r},{r * 90},{r * 30}\n" for i, r in zip(t, req, strict=True)))
    return path


def test_eval_writes_the_issue_json(tmp_path: Path) -> None:
    series = _density_csv(tmp_path / "d.csv")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(forecaster, ["eval", "--series", str(series), "--window", "3600", "--horizon", "2",
                                          "--json", str(out), "--models", "lstm,last_value,ewma", "--history", "6",
                                          "--dim", "8", "--epochs", "2", "--members", "1", "--seeds", "0,1"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["window_s"] == 3600.0 and r["horizon"] == 2 and r["target"] == "output_tokens"
    assert r["seeds"] == [0, 1] and len(r["models"]["lstm"]["per_seed"]) == 2
    for m in r["models"].values():
        assert len(m["smape_by_horizon"]) == 2 and set(m["coverage"]) == {"0.5", "0.9", "0.99"}
        assert {"0.5", "0.9", "0.99", "last_value_at_equal_under_0.9"} <= set(m["provisioning"])
    p = r["periods"]  # train | calibration | test, in this order, not overlapping
    assert p["train_windows"][1] <= p["calibration_origins"][0] + 1 <= p["calibration_origins"][1] + 1
    assert p["calibration_origins"][1] < p["test_origins"][0]
    iv = r["models"]["lstm"]["intervals"]["h2"]["minus_last_value"]
    assert iv["lo"] <= iv["value"] <= iv["hi"]
    assert "last_value" in res.output


def test_eval_v1_protocol_keeps_the_issue6_json(tmp_path: Path) -> None:
    series = _density_csv(tmp_path / "d.csv")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(forecaster, ["eval", "--series", str(series), "--window", "3600", "--horizon", "2",
                                          "--json", str(out), "--models", "lstm,last_value", "--history", "6",
                                          "--dim", "8", "--epochs", "1", "--members", "1", "--protocol", "v1"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(out.read_text())["models"]["lstm"]["by_horizon"]) == {"1", "2"}


def test_train_writes_a_checkpoint_the_online_forecaster_loads(tmp_path: Path) -> None:
    from models.workload import OnlineForecaster

    series = _density_csv(tmp_path / "d.csv")
    res = CliRunner().invoke(forecaster, ["train", "--series", str(series), "--window", "3600", "--out",
                                          str(tmp_path / "ck"), "--history", "6", "--epochs", "2", "--dim", "8"])
    assert res.exit_code == 0, res.output
    f = OnlineForecaster(3600.0, "mlstm", checkpoint=str(tmp_path / "ck" / "forecaster_mlstm.pt"), refit_every=0)
    for i in range(6):
        f.observe(i * 3600.0, 50, 4500, 1500)
    assert not f.forecast(6).fallback


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    series = _density_csv(tmp_path / "d.csv")
    res = CliRunner().invoke(forecaster, ["eval", "--series", str(series), "--window", "1000", "--json",
                                          str(tmp_path / "x.json")])
    assert res.exit_code != 0 and "multiple" in res.output
    res = CliRunner().invoke(forecaster, ["eval", "--series", str(series), "--json", str(tmp_path / "x.json"),
                                          "--window", "3600", "--models", "prophet"])
    assert res.exit_code != 0 and "unknown model" in res.output


def test_eval_on_the_validation_split_with_an_ensemble(tmp_path: Path) -> None:
    series = _density_csv(tmp_path / "d.csv")
    out = tmp_path / "v.json"
    res = CliRunner().invoke(forecaster, ["eval", "--series", str(series), "--window", "3600", "--horizon", "2",
                                          "--json", str(out), "--models", "mlstm,last_value", "--history", "6",
                                          "--dim", "8", "--epochs", "1", "--members", "2", "--split", "validation",
                                          "--level-alpha", "0.5", "--protocol", "v1"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["split"] == "validation" and r["train_windows"] == round(84 * 0.85)  # 70% of 120, then its 85%
    assert r["models"]["mlstm"]["train"]["params"] == 2 * r["models"]["mlstm"]["train"]["params_per_member"]
    assert len(r["models"]["mlstm"]["train"]["member_epochs"]) == 2
