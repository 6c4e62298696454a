"""Checkpoint folder: ``config.json`` (model config, split, training record, point estimate, metrics),
``trainable.pt`` (only the trained parameters, fp16 to keep the shipped default small; the frozen backbone is
loaded from the encoder path) and ``baselines.json`` (baselines + fallback fitted on the same training data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.request_load.baselines import Baselines
from models.request_load.calibration import CalibrationSet, load_calibration
from models.request_load.encoding import RowEncoder, load_backbone, load_tokenizer
from models.request_load.model import LengthModel, LengthModelConfig

__all__ = ["CheckpointMeta", "save_checkpoint", "load_checkpoint", "LoadedModel", "CONFIG_FILE", "WEIGHTS_FILE",
           "InvalidCheckpoint"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "trainable.pt"
FORMAT = 1


class InvalidCheckpoint(ValueError):
    """The folder is missing, incomplete or does not match its encoder."""


@dataclass
class CheckpointMeta:
    point_estimate: str = "p50"  # LengthPredictions.mean: a quantile name ("p50", "p40") or "mean"; chosen on val
    split: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    model: LengthModel
    rows: RowEncoder
    meta: CheckpointMeta
    baselines: Baselines
    calibration: CalibrationSet | None = None  # calibration.json next to the weights, if fitted
    path: Path | None = None  # the checkpoint folder (other files next to it, e.g. calibration_int8.json)


def save_checkpoint(directory: Path, model: LengthModel, meta: CheckpointMeta, baselines: Baselines) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.trainable_state().items()}
    torch.save(state, directory / WEIGHTS_FILE)
    cfg = {"format": FORMAT, "model": model.config.to_dict(), "point_estimate": meta.point_estimate,
           "split": meta.split, "train": meta.train, "metrics": meta.metrics}
    (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=1))
    baselines.save(directory)
    return directory


def read_meta(directory: Path) -> tuple[LengthModelConfig, CheckpointMeta]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise InvalidCheckpoint(f"{directory}: no {CONFIG_FILE}")
    try:
        raw = json.loads(path.read_text())
        cfg = LengthModelConfig.from_dict(raw["model"])
        meta = CheckpointMeta(raw.get("point_estimate", "p50"), raw.get("split", {}), raw.get("train", {}),
                              raw.get("metrics", {}))
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        raise InvalidCheckpoint(f"{path}: {err}") from err
    if raw.get("format") != FORMAT:
        raise InvalidCheckpoint(f"{path}: format {raw.get('format')!r}, expected {FORMAT}")
    return cfg, meta


def load_checkpoint(directory: Path, device: str | torch.device = "cpu", encoder: str | None = None,
                    dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Rebuild the model: frozen backbone from the encoder path (``encoder`` overrides the recorded one),
    trained parameters from ``trainable.pt``. Raises ``InvalidCheckpoint`` on any mismatch."""
    directory = Path(directory)
    cfg, meta = read_meta(directory)
    if encoder is not None:
        cfg = LengthModelConfig.from_dict({**cfg.to_dict(), "encoder": encoder})
    try:
        baselines = Baselines.load(directory)
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        backbone = load_backbone(cfg.encoder)
        model = LengthModel(cfg, backbone)
        expected = model.trainable_state()
        if set(state) != set(expected):
            raise InvalidCheckpoint(f"{directory}: trained parameters do not match the model "
                                    f"(missing {sorted(set(expected) - set(state))[:3]}, "
                                    f"unexpected {sorted(set(state) - set(expected))[:3]})")
        for k, v in state.items():
            if v.shape != expected[k].shape:
                raise InvalidCheckpoint(f"{directory}: {k} has shape {tuple(v.shape)}, "
                                        f"the encoder wants {tuple(expected[k].shape)}")
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except InvalidCheckpoint:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as err:
        raise InvalidCheckpoint(f"{directory}: {type(err).__name__}: {err}") from err
    model.merge_adapters().eval().to(device=device, dtype=dtype)
    rows = RowEncoder(load_tokenizer(cfg.encoder), cfg.max_length, cfg.n_soft, cfg.max_model_tokens)
    return LoadedModel(model, rows, meta, baselines, load_calibration(directory), directory)
