"""``get_predictor(spec, **ctx)``: the one way the simulator harness and the live agents get a predictor.

Specs: ``"model"``, ``"model(path=DIR,device=cuda,timeout_s=0.05,cuda_graphs=false)"`` (options:
``model_options()``), ``"fallback"``, ``"fallback(path=DIR)"``,
``"oracle"``, ``"noisy-oracle(sigma=0.3)"``, ``"noisy-oracle(sigma=0.3,seed=1)"``. Arguments in the spec
override ``ctx``; ``ctx`` carries what the caller knows, e.g. ``true_lengths=`` for the oracles (see
``OraclePredictor``), ``device=`` or ``path=``. Unknown ctx keys are ignored so callers can pass one ctx to
any spec. The model predictor is imported lazily (torch) and falls back by itself when its checkpoint is
missing or broken (``LengthPredictions.source`` says so).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.request_load.base_predictor import LengthPredictor
from models.request_load.baselines import Baselines
from models.request_load.simple_predictors import FallbackPredictor, NoisyOraclePredictor, OraclePredictor
from streams.policies.spec_grammar import SpecError, split_spec

__all__ = ["get_predictor", "parse_spec", "default_checkpoint_dir", "model_options", "PREDICTORS",
           "InvalidPredictorSpec"]



class InvalidPredictorSpec(ValueError):
    pass


def default_checkpoint_dir() -> Path:
    """The shipped checkpoint (trained parameters, config, baselines)."""
    return Path(__file__).resolve().parent / "checkpoints" / "default"


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"noisy-oracle(sigma=0.3)"`` -> ``("noisy-oracle", {"sigma": 0.3})`` (the shared spec grammar)."""
    try:
        return split_spec(spec)
    except SpecError as e:
        raise InvalidPredictorSpec(str(e)) from e


def _fallback(args: dict[str, Any]) -> LengthPredictor:
    from models.request_load.calibration import CALIBRATION_FILE, CalibrationSet

    path = Path(args.get("path") or default_checkpoint_dir())
    cal = CalibrationSet.load(path).fallback if (path / CALIBRATION_FILE).exists() else None
    return FallbackPredictor(Baselines.load(path).fallback, calibration=cal)


def _oracle(args: dict[str, Any]) -> LengthPredictor:
    return OraclePredictor(args.get("true_lengths"))


def _noisy_oracle(args: dict[str, Any]) -> LengthPredictor:
    if "sigma" not in args:
        raise InvalidPredictorSpec("noisy-oracle needs sigma, e.g. 'noisy-oracle(sigma=0.3)'")
    return NoisyOraclePredictor(float(args["sigma"]), args.get("true_lengths"), seed=int(args.get("seed", 0)))


def model_options() -> frozenset[str]:
    """What ``model(...)`` takes: the checkpoint ``path``, the predictor's ``timeout_s`` / ``cache_size`` and every
    ``EngineConfig`` field (``device``, ``dtype``, ``max_batch_size``, ``cpu_batch_rows``, ``max_length``, ``int8``,
    ``backend``, ``threads``, ``compile``, ``cuda_graphs``, ``eager_full_positions``, ``tokenizer_threads``, ...)."""
    from dataclasses import fields

    from models.request_load.engine import EngineConfig  # torch: import only when asked for

    return frozenset({"path", "timeout_s", "cache_size"} | {f.name for f in fields(EngineConfig)})


def _model(args: dict[str, Any]) -> LengthPredictor:
    from models.request_load.inference import load_model_predictor  # torch: import only when asked for

    known = model_options() - {"path"}
    return load_model_predictor(Path(args.get("path") or default_checkpoint_dir()),
                                **{k: v for k, v in args.items() if k in known})


PREDICTORS: dict[str, Callable[[dict[str, Any]], LengthPredictor]] = {
    "model": _model,
    "fallback": _fallback,
    "oracle": _oracle,
    "noisy-oracle": _noisy_oracle,
}


def get_predictor(spec: str, **ctx: Any) -> LengthPredictor:
    """A predictor for ``spec``; spec arguments override ``ctx`` entries of the same name."""
    name, kwargs = parse_spec(spec)
    if name not in PREDICTORS:
        raise InvalidPredictorSpec(f"unknown predictor {name!r}; known: {sorted(PREDICTORS)}")
    if name == "model" and (unknown := set(kwargs) - model_options()):
        # ctx may carry keys for other predictors (ignored); a typo in the spec itself must not pass silently
        raise InvalidPredictorSpec(f"unknown option(s) {sorted(unknown)} in {spec!r}; model takes "
                                   f"{sorted(model_options())}")
    return PREDICTORS[name]({**ctx, **kwargs})
