"""``preserve calibrate``: measure engine-step times on a GPU and fit the simulator's cost model to them."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["calibrate"]

SCRIPT = Path(__file__).resolve().parent.parent / "fleet" / "calibration" / "measure_llama_step.py"


@click.group()
def calibrate() -> None:
    """Calibrate the fleet simulator's step-time cost model (see fleet/calibration/README.md)."""


@calibrate.command()
@click.option("--out", "out_csv", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Measurements CSV to write (e.g. fleet/calibration/h100_measurements.csv).")
@click.option("--budget-s", type=float, default=0.25, show_default=True, help="Timed seconds per grid point.")
@click.option("--limit", type=int, default=0, show_default=True, help="Measure only the first N points (0: all).")
@click.option("--no-fuse", is_flag=True, help="Leave the element-wise stages unfused (no torch.compile).")
def measure(out_csv: Path, budget_s: float, limit: int, no_fuse: bool) -> None:
    """Time a Llama-2-7B-architecture step grid on this machine's GPU (needs CUDA; ~2 minutes on an H100)."""
    try:
        import torch
    except ImportError as exc:
        raise click.ClickException("PyTorch is not installed; `preserve calibrate measure` needs it") from exc
    if not torch.cuda.is_available():
        raise click.ClickException("no CUDA GPU visible: `preserve calibrate measure` must run on the GPU it "
                                   "calibrates (fit existing measurements with `preserve calibrate fit`)")
    cmd = [sys.executable, str(SCRIPT), "--out", str(out_csv), "--budget-s", str(budget_s), "--limit", str(limit)]
    if no_fuse:
        cmd.append("--no-fuse")
    raise SystemExit(subprocess.call(cmd))


@calibrate.command()
@click.option("--measurements", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Measurements CSV written by `preserve calibrate measure`.")
@click.option("--out", "out_json", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Cost-model JSON to write (e.g. streams/policies/profiles/llama2-7b-h100.json).")
@click.option("--mode", default="graph", show_default=True, help="Rows of this `mode` column are fitted.")
@click.option("--cpu-overhead-s", type=float, default=None,
              help="Engine CPU time per step added to the fit [default: keep the value in --out, else 0].")
@click.option("--cpu-per-seq-s", type=float, default=None,
              help="Engine CPU time per decoding sequence [default: keep the value in --out, else 0].")
@click.option("--note", default="", help="Free text stored as the JSON's `derivation`.")
def fit(csv_path: Path, out_json: Path, mode: str, cpu_overhead_s: float | None, cpu_per_seq_s: float | None,
        note: str) -> None:
    """Least-squares fit (non-negative coefficients, relative error) of the cost model; prints MAPE and max error."""
    from fleet.calibration.fit import fit_cost_model, read_measurements

    try:
        rows = read_measurements(csv_path, mode=mode)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    previous = _read_json(out_json)
    cpu0 = cpu_overhead_s if cpu_overhead_s is not None else float(previous.get("cpu_overhead_s", 0.0))
    cpu1 = cpu_per_seq_s if cpu_per_seq_s is not None else float(previous.get("cpu_per_seq_s", 0.0))
    meta = _read_json(csv_path.with_suffix(".meta.json"))
    source = f"fit of {csv_path.name} ({meta.get('gpu', '?')}, torch {meta.get('torch', '?')}, " \
             f"measured {meta.get('measured_at', '?')})"
    result = fit_cost_model(rows, cpu_overhead_s=cpu0, cpu_per_seq_s=cpu1, source=source)
    extra = {"status": "calibrated", "measurements": csv_path.name, "measured_on": meta,
             "fitted_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
             "fit": {"rows": result.rows, "mode": mode, "mape_pct": round(result.mape, 3),
                     "max_abs_pct": round(result.max_abs_pct, 3), "worst_row": vars(result.worst)},
             "derivation": note or previous.get("derivation", "")}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    result.model.to_json(out_json, extra=extra)
    click.echo(f"fitted {result.rows} rows of {csv_path}: MAPE {result.mape:.2f}%, max error "
               f"{result.max_abs_pct:.2f}% (worst: {result.worst})")
    for name, value in result.model.to_dict().items():
        click.echo(f"  {name} = {value}")
    click.echo(f"wrote {out_json}")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not valid JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}
