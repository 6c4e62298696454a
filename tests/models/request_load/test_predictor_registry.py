from __future__ import annotations

import pytest

from models.request_load.base_predictor import LengthPredictor
from models.request_load.predictor_registry import InvalidPredictorSpec, get_predictor, parse_spec
from models.request_load.simple_predictors import FallbackPredictor, NoisyOraclePredictor, OraclePredictor


@pytest.mark.parametrize(("spec", "expected"), [
    ("model", ("model", {})),
    ("model(path=/tmp/x,device=cuda)", ("model", {"path": "/tmp/x", "device": "cuda"})),
    ("noisy-oracle(sigma=0.3)", ("noisy-oracle", {"sigma": 0.3})),
    (" noisy-oracle( sigma = 0.5 , seed = 2 ) ", ("noisy-oracle", {"sigma": 0.5, "seed": 2})),
    ("fallback()", ("fallback", {})),
])
def test_parse_spec(spec: str, expected: tuple[str, dict[str, object]]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "model(", "noisy-oracle(0.3)", "Model!", "x(a=1,=2)"])
def test_parse_spec_rejects(spec: str) -> None:
    with pytest.raises(InvalidPredictorSpec):
        parse_spec(spec)


def test_get_predictor_kinds() -> None:
    fb = get_predictor("fallback")
    assert isinstance(fb, FallbackPredictor) and isinstance(fb, LengthPredictor)
    assert fb.predict([None], [20], ["gpt-3.5-turbo-0613"]).source == "fallback"
    oracle = get_predictor("oracle", true_lengths=[5, 6], unrelated="ignored")
    assert isinstance(oracle, OraclePredictor)
    assert oracle.predict([None, None], [1, 1], ["a", "b"]).mean.tolist() == [5.0, 6.0]
    noisy = get_predictor("noisy-oracle(sigma=0.2)", true_lengths=[5], sigma=9.0)
    assert isinstance(noisy, NoisyOraclePredictor) and noisy.sigma == 0.2  # spec overrides ctx


def test_get_predictor_errors() -> None:
    with pytest.raises(InvalidPredictorSpec, match="unknown predictor"):
        get_predictor("magic")
    with pytest.raises(InvalidPredictorSpec, match="sigma"):
        get_predictor("noisy-oracle")


def test_model_spec_with_missing_checkpoint_falls_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pred = get_predictor(f"model(path={tmp_path / 'nothing'})")
    out = pred.predict(["hello"], [3], ["gpt-3.5-turbo-0613"])
    assert out.source == "fallback" and out.mean[0] > 0


def test_model_spec_rejects_unknown_options_but_ignores_unknown_ctx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A typo in the spec fails loudly (it used to be dropped, or to break the engine into fallback-only);
    keys the caller's ctx carries for other predictors stay ignored."""
    with pytest.raises(InvalidPredictorSpec, match="cuda_graph"):
        get_predictor("model(cuda_graph=false)")
    pred = get_predictor(f"model(path={tmp_path / 'nothing'},cuda_graphs=false,cpu_batch_rows=4)",
                         true_lengths=[1], unrelated="ignored")
    assert pred.predict(["hello"], [3], ["gpt-3.5-turbo-0613"]).source == "fallback"
