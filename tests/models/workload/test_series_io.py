from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from models.workload.series_io import SeriesError, load_series


def _aggregate(path: Path, n: int = 30, gap: tuple[int, int] = (10, 13)) -> Path:
    lines = ["window_start_s,req_per_s,in_tok_per_s_covered,out_tok_per_s_covered,rate_coverage"]
    for i in range(n):
        req = 0.0 if gap[0] <= i < gap[1] else 100.0 + i
        lines.append(f"{i * 600},{req},{req * 100 * 0.5},{req * 20 * 0.5},{0.5 if req else 0}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_servegen_aggregate_divides_by_coverage_and_marks_gaps(tmp_path: Path) -> None:
    s = load_series(_aggregate(tmp_path / "agg.csv"), 600.0)
    assert s.values.shape == (30, 3) and s.unit == "per_second"
    np.testing.assert_allclose(s.values[0], [100.0, 10000.0, 2000.0])
    assert s.valid.tolist() == [not 10 <= i < 13 for i in range(30)]
    np.testing.assert_allclose(s.values[10:13], np.repeat(s.values[9:10], 3, axis=0))  # gap carried forward
    assert any("rate_coverage" in n for n in s.notes)


def test_coarser_window_averages_rates(tmp_path: Path) -> None:
    s = load_series(_aggregate(tmp_path / "agg.csv", gap=(0, 0)), 1200.0)
    assert len(s.values) == 15 and s.values[0, 0] == pytest.approx(100.5) and s.window_start[1] == 1200.0
    with pytest.raises(SeriesError, match="multiple"):
        load_series(tmp_path / "agg.csv", 900.0)


def test_bad_number_names_the_line(tmp_path: Path) -> None:
    p = _aggregate(tmp_path / "agg.csv")
    lines = p.read_text().splitlines()
    lines[5] = "2400,abc,1,1,0.5"
    p.write_text("\n".join(lines))
    with pytest.raises(SeriesError, match="line 6: req_per_s"):
        load_series(p, 600.0)


def test_servegen_client_folder_sums_rates(tmp_path: Path) -> None:
    for client, rate in ((0, 1.5), (1, 2.0)):
        rows = "".join(f"{i * 600},{rate if i != 3 else 0},1.0,Gamma,1.0,1.0\n" for i in range(12))
        with gzip.open(tmp_path / f"chunk-{client}-trace.csv.gz", "wt") as fh:
            fh.write(rows)
    s = load_series(tmp_path, 600.0)
    assert s.available == ("requests",) and s.values[0, 0] == pytest.approx(3.5) and not s.valid[3]


def test_density_csv_and_per_request_trace_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrivals = np.sort(rng.uniform(0, 6000, 400))
    prompt, out = rng.integers(1, 100, 400), rng.integers(1, 50, 400)
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n"
                     + "".join(f"{a},{p},{o}\n" for a, p, o in zip(arrivals, prompt, out, strict=True)))
    from_trace = load_series(trace, 600.0)
    idx = (arrivals // 600).astype(int)
    np.testing.assert_array_equal(from_trace.values[:, 0], np.bincount(idx, minlength=10))
    np.testing.assert_array_equal(from_trace.values[:, 2], np.bincount(idx, weights=out, minlength=10))
    density = tmp_path / "density.csv"
    density.write_text("service,window_start,window_s,requests,prompt_tokens,output_tokens\n" + "".join(
        f"svc,{w},600,{int(v[0])},{int(v[1])},{int(v[2])}\n" for w, v in zip(from_trace.window_start,
                                                                            from_trace.values, strict=True)))
    from_density = load_series(density, 600.0)
    np.testing.assert_array_equal(from_density.values, from_trace.values)
    assert from_density.unit == "per_window" and from_density.valid.all()


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match="no such"):
        load_series(tmp_path / "nope.csv", 600.0)


@pytest.mark.parametrize("model", ["m-mid", "m-small"])
def test_real_servegen_aggregate(shared_data: Path, model: str) -> None:
    s = load_series(shared_data / "traces" / "servegen" / f"servegen_{model}_window600s_aggregate.csv", 600.0)
    assert s.values.shape == (2016, 3) and s.window_start[-1] == 2015 * 600
    assert 0.9 < s.valid.mean() < 1.0  # a few collection gaps, marked
    assert (s.values[s.valid] > 0).all() and np.isfinite(s.values).all()
