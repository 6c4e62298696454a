"""Offline, the simulator corrects length predictions from completions as the live predict stage does."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.prediction_feedback import PredictionFeedback
from fleet.sim_inputs import SimConfig, Workload
from fleet.simulator import Simulator
from streams.policies.builder import build_policy
from streams.policies.engine_profiles import get_preset
from streams.policies.policy_registry import parse_policy


def workload(n: int, true_scale: float) -> Workload:
    rng = np.random.default_rng(0)
    base = rng.uniform(80, 120, n)
    return Workload(arrival=np.arange(n) * 0.5, prompt_tokens=np.full(n, 200), request_ids=[f"r{i}" for i in range(n)],
                    output_tokens=np.round(base * true_scale * rng.uniform(0.8, 1.2, n)).astype(np.int64),
                    predicted=base, predicted_p90=base * 1.5,
                    quantiles={"p10": base * 0.6, "p50": base * 0.95, "p90": base * 1.5}, predictor_source="model")


def test_a_service_whose_lengths_grew_half_is_recalibrated_from_its_completions() -> None:
    w = workload(600, true_scale=1.5)
    fb = PredictionFeedback(w, window=256)
    first, _ = fb.predict(0)
    assert first == pytest.approx(w.predicted[0])  # nothing learned yet: the base prediction
    for i in range(500):
        fb.predict(i)
        fb.complete(w.request_ids[i], int(w.output_tokens[i]))
    late, p90 = fb.predict(550)
    assert late / w.predicted[550] == pytest.approx(1.5, rel=0.08)
    assert p90 > late


def test_the_simulator_runs_the_feedback_when_the_setting_is_on() -> None:
    w = workload(200, true_scale=1.5)
    router, scaler = build_policy(parse_policy("least-requests:fixed(n=2)"))
    on = Simulator(w, SimConfig(engine=get_preset("llama2-7b-h100"), initial_instances=2, predictor_online_window=64),
                   router, scaler)
    assert on.lengths is not None
    on.run()
    assert on.lengths.online.summary("default")["mean_scale"] > 1.3
    off = Simulator(w, SimConfig(engine=get_preset("llama2-7b-h100"), initial_instances=2), *build_policy(
        parse_policy("least-requests:fixed(n=2)")))
    assert off.lengths is None


@pytest.mark.parametrize("quantiles", ["all", "none", "no-p90"])
def test_the_per_request_path_gives_the_batch_correction_of_that_request(quantiles: str) -> None:
    """The simulator's scalar path is the live agent's ``OnlineCorrection.correct`` on a batch of one."""
    from models.request_load.base_predictor import LengthPredictions
    from models.request_load.online import OnlineConfig, OnlineCorrection

    w = workload(400, true_scale=1.3)
    q = {"all": w.quantiles, "none": None,
         "no-p90": {k: v for k, v in (w.quantiles or {}).items() if k != "p90"}}[quantiles]
    w = Workload(w.arrival, w.prompt_tokens, w.output_tokens, w.request_ids, predicted=w.predicted,
                 predicted_p90=w.predicted_p90, quantiles=q, predictor_source="model")
    fb = PredictionFeedback(w, window=64)
    ref = OnlineCorrection(OnlineConfig(window=64))
    p90 = w.predicted_p90
    assert p90 is not None and w.predicted is not None
    for i in range(300):
        base = LengthPredictions(mean=w.predicted[i:i + 1], p90=p90[i:i + 1], source="model",
                                 quantiles={k: v[i:i + 1] for k, v in (q or {}).items()})
        ref.remember([w.request_ids[i]], ["default"], base)
        want = ref.correct(["default"], base)
        got = fb.predict(i)
        assert got == pytest.approx((float(want.mean[0]), float(want.p90[0])), rel=1e-9, abs=1e-9)
        if i % 3 == 0:  # complete some, out of order, in both
            j = i // 2
            fb.complete(w.request_ids[j], int(w.output_tokens[j]))
            ref.complete(w.request_ids[j], float(w.output_tokens[j]))
