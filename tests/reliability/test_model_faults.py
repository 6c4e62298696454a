"""Model faults in the `predict` stage: checkpoint missing or corrupt, inference timeout, inference error.

In every case the fallback predictor answers, each PredictedRequest says so (``predictor="fallback"``), the
predictor's counters (the metrics) record why, and the requests still get routed. A tiny random-init encoder
(the model tests' fixture) keeps this on CPU in seconds; the checkpoint is a real one written by ``train``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from models.request_load.base_predictor import LengthPredictions
from models.request_load.data import SplitConfig
from models.request_load.inference import ModelPredictor
from models.request_load.model import LengthModelConfig
from models.request_load.train import TrainConfig, train
from streams.pipeline_config import PipelineConfig
from streams.records import (
    InstanceEvent,
    InstanceEventKind,
    InstanceState,
    PredictedRequest,
    RequestEvent,
    RouteDecision,
)
from streams.stages.control import RouteAgentState
from streams.stages.predict import PredictAgentState
from streams.stages.predict_batch import predict_requests
from streams.transport.messages import RawMessage
from tests.models.request_load.conftest import synthetic_examples, tiny_encoder  # noqa: F401 (fixture)
from tests.reliability.bad_events import encode, good_request

pytestmark = pytest.mark.timeout(240)

SERVICE = "gpt-3.5"


@pytest.fixture(scope="module")
def ckpt(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("rel_ckpt")
    train(synthetic_examples(60), out, TrainConfig(epochs=1, batch_size=16),
          LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=48), SplitConfig(test_frac=0.1))
    return out


def _requests(n: int) -> list[RawMessage]:
    return [RawMessage("requests", SERVICE.encode(), encode(good_request(i, SERVICE, time.time(),
                                                                         f"write a long essay {i}")), 0, i)
            for i in range(n)]


def _predict(spec: str, n: int = 20) -> tuple[PredictAgentState, list[PredictedRequest]]:
    state = PredictAgentState(spec)
    out = state.handle(_requests(n), time.time())
    assert all(isinstance(r, PredictedRequest) for r in out) and len(out) == n
    return state, out  # type: ignore[return-value]


def _routes(preds: list[PredictedRequest]) -> list[RouteDecision]:
    """Routing goes on: the predictions of a faulty model still route through the real route state."""
    state = RouteAgentState(PipelineConfig(policy="preserve:preserve", predictor="fallback"))
    ready = InstanceEvent(ts=time.time() - 60, service=SERVICE, instance_id="i-0", kind=InstanceEventKind.READY,
                          state=InstanceState.READY, kv_capacity_tokens=100_000)
    msgs = [RawMessage("instance-events", SERVICE.encode(), ready.to_json(), 0, 0)]
    msgs += [RawMessage("predicted-requests", SERVICE.encode(), p.to_json(), 0, i) for i, p in enumerate(preds)]
    return [r for r in state.handle(msgs, time.time()) if isinstance(r, RouteDecision)]


def _fallback_means(state: PredictAgentState, n: int) -> list[float]:
    reqs = [RequestEvent.model_validate_json(m.value or b"") for m in _requests(n)]
    return [p.predicted_tokens for p in predict_requests(reqs, state.fallback)]


def test_healthy_checkpoint_is_used_and_flagged_model(ckpt: Path) -> None:
    _, out = _predict(f"model(path={ckpt})")
    assert {p.predictor for p in out} == {"model"}


def test_missing_checkpoint_falls_back_flagged_and_routing_goes_on(tmp_path: Path) -> None:
    state, out = _predict(f"model(path={tmp_path / 'nowhere'})")
    assert {p.predictor for p in out} == {"fallback"}
    assert [p.predicted_tokens for p in out] == _fallback_means(state, len(out))
    stats = state.predictor.stats  # type: ignore[attr-defined]
    assert stats.fallback_rows == len(out) and stats.model_rows == 0
    assert "config.json" in state.predictor.unavailable  # type: ignore[attr-defined]
    assert sorted(r.request_id for r in _routes(out)) == sorted(p.request_id for p in out)


@pytest.mark.parametrize("damage", ["weights", "config", "truncated-weights", "wrong-shapes"])
def test_corrupt_checkpoint_falls_back_flagged(ckpt: Path, tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    if damage == "weights":
        (broken / "trainable.pt").write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated-weights":
        data = (broken / "trainable.pt").read_bytes()
        (broken / "trainable.pt").write_bytes(data[: len(data) // 2])
    elif damage == "config":
        (broken / "config.json").write_text("{not json")
    else:  # a checkpoint of another architecture: the head is wider than the config says
        cfg = json.loads((broken / "config.json").read_text())
        cfg["model"]["head_hidden"] = 64
        (broken / "config.json").write_text(json.dumps(cfg))
    state, out = _predict(f"model(path={broken})")
    assert {p.predictor for p in out} == {"fallback"}
    assert state.predictor.unavailable  # type: ignore[attr-defined]  # why it is down, for the operator
    assert len(_routes(out)) == len(out)


def test_inference_timeout_answers_from_the_fallback_and_counts_it(ckpt: Path) -> None:
    state, out = _predict(f"model(path={ckpt},timeout_s=0.000001)")
    assert {p.predictor for p in out} == {"fallback"}
    stats = state.predictor.stats  # type: ignore[attr-defined]
    assert stats.timeouts == 1 and stats.reasons.get("timeout") == 1
    assert len(_routes(out)) == len(out)
    state.predictor.close()  # type: ignore[attr-defined]


def _oom(*_args: object) -> LengthPredictions:
    raise RuntimeError("CUDA error: out of memory")


class _Exploding:
    """A predictor that fails the way a GPU does when it runs out of memory."""

    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                services: Sequence[str]) -> LengthPredictions:
        return _oom()


def test_inference_error_in_the_engine_falls_back_and_counts_it(ckpt: Path) -> None:
    state = PredictAgentState(f"model(path={ckpt})")
    predictor = state.predictor
    assert isinstance(predictor, ModelPredictor) and predictor.engine is not None
    predictor.engine.run = _oom  # type: ignore[method-assign,assignment]
    out = state.handle(_requests(10), time.time())
    assert {p.predictor for p in out} == {"fallback"}  # type: ignore[union-attr]
    assert predictor.stats.errors == 1 and "out of memory" in predictor.stats.last_error


def test_a_predictor_that_raises_is_replaced_by_the_fallback_for_the_batch() -> None:
    state = PredictAgentState("fallback")
    state.predictor = _Exploding()
    out = state.handle(_requests(15), time.time())
    assert len(out) == 15 and {p.predictor for p in out} == {"fallback"}  # type: ignore[union-attr]
    assert len(_routes(out)) == 15  # type: ignore[arg-type]


def _stamped(n: int, sent_at: float) -> list[RawMessage]:
    return [RawMessage(m.topic, m.key, m.value, m.partition, m.offset, sent_at) for m in _requests(n)]


def test_queued_requests_get_the_fallback_flagged_then_the_model_again(ckpt: Path) -> None:
    """A queue in front of a slow encoder: a batch whose oldest request waited past the limit is answered by
    the fallback (flagged), fresh batches by the model again."""
    state = PredictAgentState(f"model(path={ckpt})", max_lag_s=1.0)
    now = time.time()
    stale = state.handle(_stamped(8, now - 3.0), now)
    assert {p.predictor for p in stale} == {"fallback"} and state.lagged_batches == 1  # type: ignore[union-attr]
    fresh = state.handle(_stamped(8, now - 0.1), now)
    assert {p.predictor for p in fresh} == {"model"} and state.lagged_batches == 1  # type: ignore[union-attr]


def test_lag_limit_off_or_unstamped_messages_keep_the_model(ckpt: Path) -> None:
    now = time.time()
    off = PredictAgentState(f"model(path={ckpt})", max_lag_s=0.0)
    assert {p.predictor for p in off.handle(_stamped(4, now - 30.0), now)} == {"model"}  # type: ignore[union-attr]
    on = PredictAgentState(f"model(path={ckpt})", max_lag_s=1.0)
    assert {p.predictor for p in on.handle(_requests(4), now)} == {"model"}  # type: ignore[union-attr]
