"""LMaaS days: deterministic client -> service split, one serving model per service, real prompts and lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replay.lmaas_synth import pick_models, split_clients, synthesize_lmaas
from replay.servegen_synth import SynthConfig


def _clients() -> pd.DataFrame:
    """Two recordings, 10 clients, 48 h of 600 s windows; client volume grows with its id."""
    rows = []
    for source, n in (("a", 6), ("b", 4)):
        for c in range(n):
            for w in range(288):
                rate = 0.05 * (c + 1) * (1.5 if source == "b" else 1.0) * (1 + 0.5 * np.sin(w / 144 * np.pi))
                rows.append((source, c, w * 600.0, rate, 1.0, "Gamma", 1.0, 1.0 / rate))
    return pd.DataFrame(rows, columns=["source", "client", "window_start_s", "rate", "cv", "dist", "shape", "scale"])


def _corpus() -> pd.DataFrame:
    rows = []
    for m, (count, out) in {"big": (50, 300), "mid": (20, 100), "small": (10, 30), "tiny": (5, 7)}.items():
        rows += [(f"{m} prompt {i}", 10 + i, out + i, m) for i in range(count)]
    return pd.DataFrame(rows, columns=["prompt", "prompt_tokens", "response_tokens", "model"])


def test_the_models_with_most_rows_serve_unless_given() -> None:
    assert pick_models(_corpus(), 3, None) == ["big", "mid", "small"]
    assert pick_models(_corpus(), 2, ["tiny", "mid"]) == ["tiny", "mid"]
    with pytest.raises(ValueError, match="not in the prompt corpus"):
        pick_models(_corpus(), 1, ["nope"])
    with pytest.raises(ValueError, match="one per service"):
        pick_models(_corpus(), 3, ["big"])
    with pytest.raises(ValueError, match="serving models"):
        pick_models(_corpus(), 5, None)


def test_clients_split_deterministically_each_service_gets_one_of_the_largest() -> None:
    clients = _clients()
    a, b = split_clients(clients, 3, seed=4), split_clients(clients, 3, seed=4)
    assert a == b and len(a) == 10 and set(a.values()) == {0, 1, 2}
    volume = clients.groupby(["source", "client"])["rate"].sum().sort_values(ascending=False)
    top = [(str(s), int(c)) for s, c in volume.index[:3]]
    assert sorted(a[k] for k in top) == [0, 1, 2]  # the snake draft's first round
    assert any(split_clients(clients, 3, seed=s) != a for s in range(5, 10))


def test_day_two_has_the_same_services_clients_and_prompts_as_day_one() -> None:
    clients, corpus = _clients(), _corpus()
    day1 = synthesize_lmaas(clients, SynthConfig(start_hour=0, hours=24), corpus, 3, None, seed=1)
    day2 = synthesize_lmaas(clients, SynthConfig(start_hour=24, hours=24), corpus, 3, None, seed=1)
    again = synthesize_lmaas(clients, SynthConfig(start_hour=0, hours=24), corpus, 3, None, seed=1)
    pd.testing.assert_frame_equal(day1, again)
    assert set(day1["service"]) == set(day2["service"]) == {"big", "mid", "small"}
    share1 = day1["service"].value_counts(normalize=True)
    share2 = day2["service"].value_counts(normalize=True)
    assert (share1 - share2).abs().max() < 0.03  # the same clients behind each service
    assert not day1["request_id"].isin(day2["request_id"]).any()


def test_every_request_carries_a_real_prompt_of_its_model_with_that_models_length() -> None:
    corpus = _corpus()
    df = synthesize_lmaas(_clients(), SynthConfig(hours=6), corpus, 3, None, seed=0)
    assert df["arrival_s"].is_monotonic_increasing and df["arrival_s"].iloc[0] == 0.0
    assert (df["model"] == df["service"]).all()
    pairs = set(zip(corpus["prompt"], corpus["prompt_tokens"], corpus["response_tokens"], corpus["model"],
                    strict=True))
    got = set(zip(df["prompt"], df["prompt_tokens"], df["output_tokens"], df["model"], strict=True))
    assert got <= pairs
    expected = 6 * 3600 * _clients().query("window_start_s < 21600")["rate"].sum() * 600 / 21600
    assert abs(len(df) - expected) < 0.05 * expected


def test_synth_cli_writes_an_lmaas_day_with_prompt_and_model_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from preserve_cli.main import cli
    from streams.settings import data_path

    if not data_path("prompts").is_dir() or not data_path("traces", "servegen", "m-small").is_dir():
        pytest.skip(f"shared data absent under {data_path()}")
    out = tmp_path / "day.csv.gz"
    res = CliRunner().invoke(cli, ["synth", "--servegen", "m-small", "--servegen", "m-mid", "--services", "3",
                                   "--hours", "1", "--rate-scale", "0.001", "--out", str(out)])
    assert res.exit_code == 0, res.output
    from replay.trace_loader import load_trace

    df = load_trace(out).df
    assert df["service"].nunique() == 3 and {"prompt", "model"} <= set(df.columns)
    bad = CliRunner().invoke(cli, ["synth", "--servegen", "m-small", "--models", "x", "--out", str(out)])
    assert bad.exit_code != 0 and "--services" in bad.output
