"""ServeGen synthesis: determinism, per-window rates, burstiness, time-scale and rate-scale semantics."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.servegen_io import load_servegen
from replay.servegen_synth import SynthConfig, synthesize_arrivals, synthesize_trace, window_rates
from replay.trace_schema import TraceFormatError

LENGTHS = pd.DataFrame({"prompt_tokens": [10, 20, 30], "output_tokens": [1, 2, 3]})


def _clients(rows: list[tuple[int, float, float, float, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["client", "window_start_s", "rate", "cv", "dist", "shape", "scale"])


# Two clients over three 600 s windows: Gamma (cv 2), Weibull, an idle window, an exponential-rate window.
CLIENTS = _clients([
    (0, 0, 5.0, 2.0, "Gamma", 0.25, 0.8), (0, 600, 1.0, 1.0, "Gamma", 1.0, 1.0), (0, 1200, 0.0, 0, "", 0, 0),
    (1, 0, 2.0, 3.0, "Weibull", 0.5, 0.2), (1, 600, 0.0, 0, "", 0, 0), (1, 1200, 3.0, 1.0, "Gamma", 1.0, 0.33),
])


def test_same_seed_same_trace_other_seed_differs() -> None:
    cfg = SynthConfig(hours=0.5)
    a, b = synthesize_trace(CLIENTS, cfg, LENGTHS, seed=7), synthesize_trace(CLIENTS, cfg, LENGTHS, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not synthesize_trace(CLIENTS, cfg, LENGTHS, seed=8)["arrival_s"].equals(a["arrival_s"])
    assert a["arrival_s"].is_monotonic_increasing and a["arrival_s"].iloc[0] == 0.0
    assert set(zip(a["prompt_tokens"], a["output_tokens"], strict=True)) <= {(10, 1), (20, 2), (30, 3)}


@pytest.mark.parametrize(("time_scale", "rate_scale"), [(1.0, 1.0), (24.0, 1.0), (1.0, 3.0), (6.0, 0.5)])
def test_window_counts_follow_rate_time_scale_and_rate_scale(time_scale: float, rate_scale: float) -> None:
    cfg = SynthConfig(hours=0.5, time_scale=time_scale, rate_scale=rate_scale)
    rows = window_rates(CLIENTS, cfg)
    arrival, win = synthesize_arrivals(rows, np.random.default_rng(0))
    played = 600.0 / time_scale
    for i, row in rows.iterrows():
        mine = arrival[win == i]
        expected = row["rate"] * rate_scale * played
        assert abs(len(mine) - expected) < 1.0  # stochastic rounding only
        assert (mine >= row["play_start_s"]).all() and (mine < row["play_start_s"] + played).all()
    assert arrival.max() < 1800.0 / time_scale


def test_mean_rate_per_window_matches_recorded_over_many_windows() -> None:
    rng = np.random.default_rng(1)
    n = 500
    rates = rng.uniform(0.001, 0.05, n)  # ~0.6 to 30 requests per window: rounding matters
    clients = _clients([(c, 0, r, 1.5, "Gamma", 1 / 1.5**2, 1.0) for c, r in enumerate(rates)])
    rows = window_rates(clients, SynthConfig(hours=600 / 3600))
    counts = [np.bincount(synthesize_arrivals(rows, np.random.default_rng(s))[1], minlength=n) for s in range(40)]
    realised = np.mean(counts, axis=0) / 600.0
    assert np.abs(realised - rows["rate"].to_numpy()).max() < 0.1 * rates.max()
    assert realised.sum() == pytest.approx(rates.sum(), rel=0.01)


@pytest.mark.parametrize(("dist", "shape", "cv"), [("Gamma", 0.25, 2.0), ("Gamma", 1.0, 1.0), ("Weibull", 0.5, 2.24)])
def test_gap_burstiness_matches_the_recorded_law(dist: str, shape: float, cv: float) -> None:
    clients = _clients([(0, 0, 200.0, cv, dist, shape, 1.0)])  # 120k arrivals in one window
    rows = window_rates(clients, SynthConfig(hours=600 / 3600))
    arrival, _ = synthesize_arrivals(rows, np.random.default_rng(3))
    gaps = np.diff(np.sort(arrival))
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_start_hour_and_partial_window() -> None:
    rows = window_rates(CLIENTS, SynthConfig(start_hour=1500 / 3600, hours=300 / 3600))  # recorded [1500, 1800)
    assert rows["client"].tolist() == [1]
    assert rows["play_start_s"].tolist() == [0.0] and rows["play_len_s"].tolist() == [300.0]
    assert rows["expected"].tolist() == [900.0]


def test_unknown_law_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown inter-arrival"):
        synthesize_trace(_clients([(0, 0, 1.0, 1.0, "Pareto", 1.0, 1.0)]), SynthConfig(hours=0.1), LENGTHS, 0)


def test_load_servegen_files(tmp_path: Path) -> None:
    for client, text in ((3, "0,0,0,,0,0\n600,0.5,1.2,Gamma,0.69,2.9\n"), (10, "0,1.0,1.0,Weibull,1.0,1.0\n")):
        with gzip.open(tmp_path / f"chunk-{client}-trace.csv.gz", "wt") as fh:
            fh.write(text)
    clients = load_servegen(tmp_path)
    assert clients["client"].tolist() == [3, 3, 10]
    assert clients["dist"].tolist() == ["", "Gamma", "Weibull"]
    (tmp_path / "chunk-11-trace.csv").write_text("0,fast,1,Gamma,1,1\n")
    with pytest.raises(TraceFormatError, match=r"chunk-11-trace.csv: line 1: rate"):
        load_servegen(tmp_path)
