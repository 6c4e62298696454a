"""``preserve forecaster``: train and evaluate the service-workload forecaster (mLSTM, LSTM and baselines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

SERIES_HELP = ("ServeGen aggregate CSV, ServeGen per-client folder, density CSV (window_start, requests, "
               "prompt_tokens, output_tokens) or a per-request trace (aggregated by arrival time).")
TARGET_CHOICES = ["generated_tokens", "output_tokens", "prompt_tokens", "requests"]


def _load(series: Path, window: float, service: str | None) -> Any:
    from models.workload.series_io import SeriesError, load_series

    try:
        return load_series(series, window, service)
    except (SeriesError, ValueError) as e:
        raise click.ClickException(str(e)) from e


def _configs(history: int, horizon: int, dim: int, epochs: int, seed: int, members: int | None,
             level_alpha: float | None, backbone: str = "mlstm", day_lags: int = 0, min_history: int = 0,
             device: str = "cpu") -> Any:
    from models.workload.model import ForecasterConfig
    from models.workload.train import TrainConfig

    base = ForecasterConfig()
    try:
        return (ForecasterConfig(backbone=backbone, history=history, horizon=horizon, dim=dim,
                                 members=base.members if members is None else members,
                                 level_alpha=base.level_alpha if level_alpha is None else level_alpha,
                                 day_lags=day_lags, min_history=min_history),
                TrainConfig(epochs=epochs, seed=seed, device=device))
    except ValueError as e:
        raise click.ClickException(str(e)) from e


def _network_options(fn: Any) -> Any:
    """Options shared by ``train`` and ``eval``; unset means ForecasterConfig's default (resolved lazily: importing
    the model here would load torch for every ``preserve`` command)."""
    fn = click.option("--device", default="cpu", show_default=True, help="torch device for training")(fn)
    fn = click.option("--day-lags", type=int, default=0, show_default=True,
                      help="multi-day network: previous days as inputs (the level d days earlier, H windows ahead "
                           "of each history step)")(fn)
    fn = click.option("--min-history", type=int, default=0, show_default=True,
                      help="multi-day network: real windows an origin needs; the rest of --history is padded "
                           "(0: all of --history)")(fn)
    fn = click.option("--level-alpha", type=float, default=None,
                      help="inputs/targets relative to an EWMA of the history with this weight on the newest "
                           "window; 1: relative to the origin window [default: ForecasterConfig.level_alpha]")(fn)
    return click.option("--members", type=int, default=None,
                        help="seeds averaged per network (member k trains with seed * members + k) "
                             "[default: ForecasterConfig.members]")(fn)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def forecaster() -> None:
    """Train/evaluate the token-density forecaster.

    The forecaster reads per-window requests, prompt tokens and generated tokens (plus time of day and day of
    week) and forecasts the next H windows: a point forecast and an upper quantile for the scaler.
    """


@forecaster.command("train")
@click.option("--series", type=click.Path(exists=True, path_type=Path), required=True, multiple=True,
              help=SERIES_HELP + " Repeat to train on several series (joined by invalid windows, see "
                                 "series_io.concat_series).")
@click.option("--window", type=float, default=600.0, show_default=True, help="window size in seconds")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder for the checkpoint (forecaster_<model>.pt) and its summary JSON")
@click.option("--target", type=click.Choice(TARGET_CHOICES + ["all"]), default="all", show_default=True,
              help="series the network is trained to forecast (all: every channel the source has)")
@click.option("--model", "backbone", type=click.Choice(["mlstm", "lstm"]), default="mlstm", show_default=True)
@click.option("--service", default=None, help="service to use from a multi-service density CSV or trace")
@click.option("--history", type=int, default=25, show_default=True, help="input windows")
@click.option("--horizon", type=int, default=6, show_default=True, help="windows forecast")
@click.option("--dim", type=int, default=32, show_default=True, help="model width")
@click.option("--epochs", type=int, default=80, show_default=True, help="maximum epochs (early stopping)")
@click.option("--seed", type=int, default=0, show_default=True)
@_network_options
@click.option("--threads", type=int, default=1, show_default=True,
              help="torch CPU threads (1 is fastest for these small models on a shared machine)")
def train_cmd(series: tuple[Path, ...], window: float, out_dir: Path, target: str, backbone: str, service: str | None,
              history: int, horizon: int, dim: int, epochs: int, seed: int, members: int | None,
              level_alpha: float | None, threads: int, day_lags: int, min_history: int, device: str) -> None:
    """Train on the whole series and write a checkpoint that ``OnlineForecaster(checkpoint=...)`` loads."""
    from dataclasses import replace

    from models.workload.features import DAY_S, TARGETS, resolve_target
    from models.workload.series_io import SeriesError, concat_series
    from models.workload.train import fit_forecaster, save_checkpoint

    _set_threads(threads)
    parts = [_load(p, window, service) for p in series]
    try:  # a gap longer than history + day lags: no sample reaches across two series
        s = parts[0] if len(parts) == 1 else concat_series(parts, history + (day_lags + 1) * int(DAY_S // window))
    except SeriesError as e:
        raise click.ClickException(str(e)) from e
    fcfg, tcfg = _configs(history, horizon, dim, epochs, seed, members, level_alpha, backbone, day_lags,
                          min_history, device)
    names = list(s.available) if target == "all" else [resolve_target(target)]
    missing = [t for t in names if t not in s.available]
    if missing:
        raise click.ClickException(f"{series}: no {missing[0]} in this source (has {list(s.available)})")
    fcfg = replace(fcfg, targets=tuple(TARGETS.index(t) for t in names))
    click.echo(f"training {backbone} on {len(s.values)} windows of {s.window_s:g} s ({', '.join(s.notes)})")
    try:
        ff = fit_forecaster(s.values, s.window_start, s.window_s, fcfg, tcfg, valid=s.valid)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    ff.info["unit"] = s.unit  # OnlineForecaster feeds per-second rates to a per_second checkpoint
    ff.info["series"] = [str(p) for p in series]
    path = save_checkpoint(ff, out_dir / f"forecaster_{backbone}.pt")
    summary = {"checkpoint": str(path), "series": [str(p) for p in series], "window_s": s.window_s, "targets": names,
               "unit": s.unit, "notes": s.notes, "config": fcfg.to_dict(), "info": ff.info}
    (out_dir / f"forecaster_{backbone}.json").write_text(json.dumps(summary, indent=2))
    click.echo(f"wrote {path} ({ff.info['epochs']} epochs, {ff.info['train_s']:.1f} s, "
               f"val loss {ff.info['val_loss']:.4f})")


def _table(result: dict[str, Any]) -> str:
    hs = ["1", str(result["horizon"])] if result["horizon"] > 1 else ["1"]
    lines = [f"{'model':<22}{'smape':>8}{'mape':>8}" + "".join(f"{'smape@' + h:>10}" for h in hs)]
    for name, m in result["models"].items():
        lines.append(f"{name:<22}{m['smape']:>8.3f}{m['mape']:>8.3f}"
                     + "".join(f"{m['by_horizon'][h]['smape']:>10.3f}" for h in hs))
    return "\n".join(lines)


def _table_v2(result: dict[str, Any]) -> str:
    hs = [0, result["horizon"] - 1] if result["horizon"] > 1 else [0]
    lines = [f"{'model':<22}{'smape':>8}" + "".join(f"{'@h' + str(h + 1):>8}" for h in hs)
             + f"{'cov.5':>7}{'cov.9':>7}{'cov.99':>7}{'under.9':>9}{'over-h.9':>10}{'LV@=under':>11}"]
    for name, m in result["models"].items():
        p9, cov = m["provisioning"]["0.9"], m["coverage"]
        lines.append(f"{name:<22}{m['smape']:>8.4f}" + "".join(f"{m['smape_by_horizon'][h]:>8.4f}" for h in hs)
                     + f"{cov['0.5']:>7.3f}{cov['0.9']:>7.3f}{cov['0.99']:>7.3f}{p9['under_share']:>9.4f}"
                     f"{p9['over_instance_hours']:>10.1f}"
                     f"{m['provisioning']['last_value_at_equal_under_0.9']['over_instance_hours']:>11.1f}")
    return "\n".join(lines)


@forecaster.command("eval")
@click.option("--series", type=click.Path(exists=True, path_type=Path), required=True, help=SERIES_HELP)
@click.option("--window", type=float, default=600.0, show_default=True, help="window size in seconds")
@click.option("--horizon", type=int, default=6, show_default=True, help="forecast horizons 1..H")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="where to write the results JSON")
@click.option("--target", type=click.Choice(TARGET_CHOICES), default="generated_tokens", show_default=True)
@click.option("--models", default="mlstm,lstm,seasonal_naive_day,seasonal_naive_week,last_value,ewma",
              show_default=True, help="comma-separated models to evaluate")
@click.option("--service", default=None, help="service to use from a multi-service density CSV or trace")
@click.option("--history", type=int, default=25, show_default=True, help="input windows")
@click.option("--dim", type=int, default=32, show_default=True, help="model width")
@click.option("--epochs", type=int, default=80, show_default=True, help="maximum epochs (early stopping)")
@click.option("--seed", type=int, default=0, show_default=True)
@_network_options
@click.option("--test-frac", type=float, default=0.3, show_default=True, help="share of the series used as origins")
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True,
              help="test: origins in the last --test-frac; validation: cut the series to the training part and "
                   "use its last 15% as origins (for choosing settings without looking at the test part)")
@click.option("--refit-every", type=int, default=0, show_default=True,
              help="v1 only: fine-tune the networks every N origins on the windows seen so far (0: train once)")
@click.option("--protocol", type=click.Choice(["v2", "v1"]), default="v2", show_default=True,
              help="v2 (issue 16): train | calibration | test periods, conformal quantiles, provisioning score, "
                   "bootstrap intervals, --seeds; v1 (issue 6): train on the first 70%, score the rest")
@click.option("--seeds", default=None, help="v2: comma-separated seeds of the networks [default: --seed]")
@click.option("--capacity", type=float, default=None,
              help="v2: per-instance capacity in the series' unit for the provisioning score [default: the "
                   "training part's median load / 8]")
@click.option("--conformal-window", type=int, default=288, show_default=True,
              help="v2: most recent residuals per horizon behind the conformal quantiles")
@click.option("--threads", type=int, default=1, show_default=True,
              help="torch CPU threads (1 is fastest for these small models on a shared machine)")
def eval_cmd(series: Path, window: float, horizon: int, json_out: Path, target: str, models: str,
             service: str | None, history: int, dim: int, epochs: int, seed: int, members: int | None,
             level_alpha: float | None, test_frac: float, split: str, refit_every: int, protocol: str,
             seeds: str | None, capacity: float | None, conformal_window: int, threads: int,
             **memory: Any) -> None:
    """Evaluation on the last --test-frac of the series (v2: see models/workload/README.md); writes the JSON and,
    for v2, the point forecasts beside it (<json>.forecasts.npz) to rescore without retraining."""
    from tqdm import tqdm

    from models.workload.evaluate import ALL_MODELS, protocol_eval, rolling_origin_eval
    from models.workload.features import resolve_target

    chosen = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in ALL_MODELS]
    if unknown:
        raise click.ClickException(f"unknown model {unknown[0]!r}; choose from {', '.join(ALL_MODELS)}")
    if not 0 < test_frac < 1:
        raise click.ClickException("--test-frac must be between 0 and 1")
    _set_threads(threads)
    s = _load(series, window, service)
    fcfg, tcfg = _configs(history, horizon, dim, epochs, seed, members, level_alpha, **memory)
    try:
        seed_list = [int(x) for x in seeds.split(",")] if seeds else [seed]
    except ValueError as e:
        raise click.ClickException(f"--seeds: {e}") from e
    with tqdm(total=len(chosen), desc="models", unit="model") as bar:
        def done(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        try:
            if protocol == "v1":
                result = rolling_origin_eval(s, horizon, resolve_target(target), chosen, fcfg, tcfg, test_frac,
                                             on_done=done, refit_every=refit_every, split=split)
            else:
                fc: dict[str, Any] = {}
                result = protocol_eval(s, horizon, resolve_target(target), chosen, fcfg, tcfg, seed_list, split,
                                       test_frac, capacity=capacity, conformal_window=conformal_window,
                                       on_done=done, forecasts_out=fc)
        except ValueError as e:
            raise click.ClickException(str(e)) from e
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2))
    if protocol == "v2":
        import numpy as np

        np.savez_compressed(json_out.with_suffix(".forecasts.npz"), **fc)
    click.echo(_table(result) if protocol == "v1" else _table_v2(result))
    click.echo(f"wrote {json_out}")
