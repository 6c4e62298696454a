"""``preserve demo --engine llama-cpp``: the live pipeline with real engine processes (pure helpers + the checks).

What changes against the simulated demo:

- the fleet runs ``--engine process`` with llama.cpp's server and the project's tiny random-weight Llama, one
  process per instance on a pool of CPU slots: the scale agent's commands start and stop real processes;
- SLOs and density windows for CPU engines (:data:`CPU_PIPELINE`), unless given on the command line;
- the replay runs at speedup 1 (engines run in wall time; measured TTFT/TPOT are real);
- token counts are capped to what the tiny CPU engines can serve on a small machine (:data:`CPU_CAPS`), and
  prompts are fillers of exactly ``prompt_tokens`` tokens (the trace's counts, not ShareGPT text);
- the workers' scaler keeps the simulated preset as its capacity model (there is no calibrated CPU preset
  yet), so the offline comparison is reported but not checked; the checks are the counts: every request routed
  and completed once, at least two engine processes started, every started process stopped, none left running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CPU_CAPS", "CPU_PIPELINE", "cpu_pipeline", "EngineDemoPlan", "plan", "engine_checks", "ENGINE_NAMES"]

ENGINE_NAMES = ("llama-cpp",)
# Pipeline settings for CPU engines, applied where the command line left the default: SLOs a 1-thread engine
# behind Kafka can meet (TTFT includes the pipeline's ~1 s), and 30 s density windows so the scaler, which
# releases capacity only after two windows, can stop a process within a short replay (300 requests = 84 s).
CPU_PIPELINE = {"slo_ttft_s": 5.0, "slo_tpot_s": 0.2, "density_window_s": 30.0}
CPU_CAPS = {"prompt_tokens": 256, "output_tokens": 64}  # per request: 1-thread engines (~200-300 tok/s) on 2 cores


@dataclass(frozen=True)
class EngineDemoPlan:
    devices: tuple[str, ...]
    engine_dir: Path
    report_path: Path

    def fleet_args(self) -> tuple[str, ...]:
        return ("--engine", "process", "--engine-flavor", "llama-cpp", "--engine-devices", ",".join(self.devices),
                "--engine-dir", str(self.engine_dir), "--engine-report", str(self.report_path))


def cpu_pipeline(pipeline: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``pipeline`` with :data:`CPU_PIPELINE` where it still holds ``defaults`` (explicit options win)."""
    return {**pipeline, **{k: v for k, v in CPU_PIPELINE.items() if pipeline.get(k) == defaults.get(k)}}


def plan(run_dir: Path, slots: int = 3) -> EngineDemoPlan:
    return EngineDemoPlan(tuple(f"cpu{i}" for i in range(slots)), run_dir / "engines", run_dir / "engines.json")


def cap_tokens(df: pd.DataFrame, caps: dict[str, int] | None = None) -> pd.DataFrame:
    """The trace with token counts clipped to ``caps`` (at least 1 token each)."""
    out = df.copy()
    for col, cap in (caps or CPU_CAPS).items():
        out[col] = out[col].clip(lower=1, upper=cap).astype(int)
    return out


def leftover_engines(engine_dir: Path) -> list[str]:
    """Pid records of engine processes that were never seen exiting (there must be none after a run)."""
    return sorted(str(p) for p in engine_dir.glob("*/pids/*.json"))


def engine_checks(doc: dict[str, Any], plan_: EngineDemoPlan) -> dict[str, Any]:
    """The engine keys of the demo JSON and their checks (read from the fleet's engine report)."""
    rep = json.loads(plan_.report_path.read_text()) if plan_.report_path.is_file() else {}
    started, stopped = rep.get("engine_processes_started", 0), rep.get("engine_processes_stopped", 0)
    left = leftover_engines(plan_.engine_dir)
    keys = {k: rep.get(k) for k in ("engine_processes_started", "engine_processes_stopped",
                                    "engine_processes_died", "engine_cold_starts_s", "engine_instance_hours",
                                    "engine_stop_reasons", "engine_failures", "replacements", "failed_requests")}
    keys["engine_processes_left_running"] = len(left) + int(rep.get("engine_processes_running", 0) or 0)
    checks = {"engine_processes_started_at_least_2": started >= 2,
              "every_engine_process_stopped": started == stopped and keys["engine_processes_left_running"] == 0,
              "engine_report_written": bool(rep)}
    return {"keys": keys, "checks": checks}
