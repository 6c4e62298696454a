"""``preserve eval``: replay one trace through the simulated fleet for each policy; table, JSON and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fleet.harness.runner import EvalConfig
from preserve_cli.settings_options import dataclass_options

__all__ = ["eval_cmd"]

DEFAULT_POLICIES = ("round-robin:fixed,least-requests:fixed,least-kv:fixed,power-of-two:fixed,token-load:fixed,"
                    "least-requests:reactive,least-requests:queue-depth")


def _load(path: Path, fmt: str | None, rate_scale: float, start_s: float | None, duration_s: float | None,
          on_bad_row: str) -> tuple[Any, dict[str, Any]]:
    from fleet.harness.trace_input import load_eval_trace

    try:
        df, info, warnings = load_eval_trace(path, fmt, rate_scale, start_s, duration_s, on_bad_row)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in warnings[:10]:
        click.echo(line, err=True)
    if len(warnings) > 10:
        click.echo(f"{path}: ... and {len(warnings) - 10:,} more bad rows", err=True)
    return df, info


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--trace", "trace_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Trace file (Azure 2023/2024 CSV, Mooncake JSONL, BurstGPT CSV, generic CSV; plain or gzip).")
@click.option("--format", "fmt", type=click.Choice(["azure", "mooncake", "burstgpt", "generic"]), default=None,
              help="Trace format (default: detected).")
@click.option("--policies", default=DEFAULT_POLICIES, show_default=True,
              help="Comma-separated ROUTER:SCALER specs; either part may carry (k=v,...), e.g. "
                   "'least-kv:reactive(up=0.8,down=0.3)'. The router parameter predictor=SPEC picks that "
                   "policy's length predictor.")
@click.option("--frontier", is_flag=True,
              help="Also sweep each baseline scaler family: fixed n=1..max-instances, reactive and queue-depth "
                   "over small threshold grids (least-requests router).")
@click.option("--rate-scale", type=float, default=1.0, show_default=True,
              help="Multiply the arrival rate (timestamps divided by X, every request kept).")
@click.option("--start", "start_s", type=float, default=None, help="Skip the first S seconds (recorded time).")
@click.option("--duration", "duration_s", type=float, default=None, help="Keep S seconds (recorded time).")
@click.option("--on-bad-row", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="Skip unparsable trace rows (reported with line numbers) or stop at the first.")
@click.option("--history", "history_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The previous day (a trace of the same service, same time of day at its start, same "
                   "--rate-scale): given to policies fitted on it (tod-schedule) and adds them to --frontier.")
@click.option("--prediction-cache", "prediction_store", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Parquet file of length predictions (per predictor, prompt, prompt length and "
                                 "serving model): reused where it has them, extended with the rest. Re-running a "
                                 "day, or running it where the encoder's weights are absent, skips the encoding.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the results JSON here.")
@click.option("--per-request", "requests_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write one CSV per policy with every request's TTFT, TPOT, e2e, preemptions, instance "
                   "and drop reason into this folder.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write latency CDFs, instances/load over time and the frontier (PNG) into this folder.")
@dataclass_options(EvalConfig)
def eval_cmd(trace_path: Path, fmt: str | None, policies: str, frontier: bool, rate_scale: float,
             start_s: float | None, duration_s: float | None, on_bad_row: str, history_path: Path | None,
             prediction_store: Path | None, json_out: Path,
             requests_dir: Path | None, plots_dir: Path | None, **settings: Any) -> None:
    """Replay a trace through the simulated fleet once per policy, in one process, on the same trace, fleet
    bounds, SLOs and cold start; print a table (cheapest first) and write the results JSON.

    \b
    Example:
      preserve eval --trace AzureLLMInferenceTrace_conv.csv --rate-scale 6 --frontier \\
        --policies 'preserve:preserve,least-kv:reactive' --json results.json --plots plots/
    """
    from tqdm import tqdm

    from fleet.harness import format_table, frontier_specs, run_eval, write_json
    from fleet.harness.report import format_summary
    from streams.policies.builder import canonical
    from streams.policies.policy_registry import PolicySpecError, parse_policies

    try:
        specs = parse_policies(policies)
    except PolicySpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--policies") from exc
    specs = [_default_fixed(s, int(settings["instances"])) for s in specs]
    if not specs and not frontier:
        raise click.BadParameter("no policy given", param_hint="--policies")
    try:
        cfg = EvalConfig(**settings)
        cfg.engine_config()
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    df, info = _load(trace_path, fmt, rate_scale, start_s, duration_s, on_bad_row)
    history = _load(history_path, fmt, rate_scale, None, None, on_bad_row)[0] if history_path else None
    if frontier:  # a fixed fleet per service: up to what the pool holds for every service of the trace
        listed = {canonical(x) for x in specs}
        specs += [s for s in frontier_specs(int(settings["max_instances"]), history=history_path is not None,
                                            services=max(1, int(df["service"].nunique())))
                  if canonical(s) not in listed]
    if cfg.time_scale != 1.0:
        eng = cfg.engine_config()
        click.echo(f"trace time compressed x{cfg.time_scale:g}: cold start {eng.cold_start_s:g} s, freeze "
                   f"{cfg.trace_s(cfg.freeze_s):g} s, warm-up {cfg.trace_s(cfg.warmup_s):g} s, density window "
                   f"{cfg.trace_s(cfg.density_window_s):g} s; every policy's windows divided by {cfg.time_scale:g}",
                   err=True)
    click.echo(f"{trace_path}: {len(df):,} requests over {info['span_s']:.0f} s; {len(specs)} policies", err=True)
    bar = tqdm(total=len(df) * len(specs), unit="req", desc="simulating", dynamic_ncols=True, mininterval=0.5,
               disable=None)  # None: no bar when stderr is not a terminal
    current = {"label": ""}
    finished = {"done": 0}

    def progress(label: str, done: int) -> None:
        if label != current["label"]:
            current["label"], finished["done"] = label, 0
            bar.set_postfix_str(label)
        bar.update(done - finished["done"])
        finished["done"] = done

    try:
        report = run_eval(df, specs, cfg, trace_info=info, progress=progress,
                          keep_results=plots_dir is not None or requests_dir is not None, history=history,
                          prediction_store=prediction_store)
    except (PolicySpecError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bar.close()
    if history_path is not None:
        report.doc["history"] = str(history_path)
    click.echo(format_table(report.doc["results"]))
    click.echo("\n" + format_summary(report.doc["summary"]))
    write_json(report.doc, json_out)
    click.echo(f"wrote {json_out}", err=True)
    if requests_dir is not None:
        from fleet.harness.report import write_requests_csv

        ids = df["request_id"].astype(str).tolist()
        for n, run in enumerate(report.runs):
            assert run.result is not None
            name = f"{n:02d}_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in run.spec.label) + ".csv"
            write_requests_csv(run.result, ids, requests_dir / name)
        click.echo(f"wrote {len(report.runs)} per-request CSVs into {requests_dir}", err=True)
    if plots_dir is not None:
        from fleet.harness.plots import write_plots

        for path in write_plots(report.runs, plots_dir):
            click.echo(f"wrote {path}", err=True)


def _default_fixed(spec: Any, instances: int) -> Any:
    """A plain ``fixed`` means ``fixed(n=--instances)``."""
    from streams.policies.policy_registry import PolicySpec

    if spec.scaler == "fixed" and "n" not in spec.scaler_params:
        return PolicySpec(spec.router, spec.scaler, spec.router_params, {**spec.scaler_params, "n": instances})
    return spec
