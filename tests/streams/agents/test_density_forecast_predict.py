"""Density (live accumulator == offline batch function), forecasts, batched prediction with fallback."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.request_load.base_predictor import LengthPredictions
from models.request_load.predictor_registry import get_predictor
from streams.policies.density_windows import density_series
from streams.records import Completion, DeadLetter, Forecast, RequestEvent, TokenDensity
from streams.stages.density import DensityAgentState
from streams.stages.forecast import ForecastAgentState
from streams.stages.predict_batch import predict_requests
from streams.transport.messages import RawMessage


def completions(n: int, seed: int = 0) -> list[Completion]:
    rng = random.Random(seed)
    out, t = [], 1000.0
    for i in range(n):
        t += rng.expovariate(2.0)
        svc = rng.choice(["a", "b"])
        jitter = rng.uniform(-20, 0)  # completions arrive slightly out of event-time order
        out.append(Completion(ts=max(0.0, t + jitter), request_id=f"r{i}", service=svc, instance_id="i0",
                              arrival_ts=0.0, prompt_tokens=rng.randint(1, 500), output_tokens=rng.randint(1, 300),
                              ttft_s=0.1, e2e_s=1.0))
    return out


@pytest.mark.parametrize("grace", [0.0, 30.0])
def test_live_density_equals_the_offline_function(grace: float) -> None:
    cs = completions(600)
    st = DensityAgentState(60.0, grace)
    live: list[TokenDensity] = []
    for i in range(0, len(cs), 37):  # arbitrary batch boundaries, plus a redelivered batch
        batch = [RawMessage("completions", c.service.encode(), c.to_json()) for c in cs[i:i + 37]]
        live += [r for r in st.handle(batch, now=0.0) if isinstance(r, TokenDensity)]
        if i == 74:
            live += [r for r in st.handle(batch, now=0.0) if isinstance(r, TokenDensity)]
    live += st.acc.flush()
    offline = density_series(cs, 60.0, grace)
    key = lambda w: (w.service, w.window_start)  # noqa: E731
    assert sorted(live, key=key) == sorted(offline.windows, key=key)
    assert st.duplicates == 37 and st.late == len(offline.late)


def test_bad_completion_is_dead_lettered_by_density() -> None:
    st = DensityAgentState(60.0, 0.0)
    out = st.handle([RawMessage("completions", b"a", b'{"ts": -1}')], now=7.0)
    assert len(out) == 1 and isinstance(out[0], DeadLetter) and "ts" in out[0].reason


class Broken:
    def predict(self, prompts, prompt_tokens, services) -> LengthPredictions:  # noqa: ANN001
        raise RuntimeError("CUDA out of memory")


def test_predictions_in_order_and_fallback_flagged_on_failure() -> None:
    reqs = [RequestEvent(ts=1.0, request_id=f"r{i}", service="conv", prompt_tokens=10 * (i + 1)) for i in range(5)]
    fb = get_predictor("fallback")
    ok = predict_requests(reqs, fb)
    assert [p.request_id for p in ok] == [r.request_id for r in reqs]
    assert all(p.predicted_p90_tokens >= p.predicted_tokens > 0 and p.predictor == "fallback" for p in ok)
    rescued = predict_requests(reqs, Broken(), fallback=fb)
    assert [p.predicted_tokens for p in rescued] == [p.predicted_tokens for p in ok]
    assert all(p.predictor == "fallback" for p in rescued)
    with pytest.raises(RuntimeError):
        predict_requests(reqs, Broken())


def test_forecast_per_target_from_closed_windows() -> None:
    st = ForecastAgentState(horizon=3, model="last_value")
    outs: list[Forecast] = []
    for k in range(4):
        w = TokenDensity(ts=60.0 * (k + 1), service="a", window_start=60.0 * k, window_s=60.0, requests=10 + k,
                         prompt_tokens=1000, output_tokens=500)
        outs = [r for r in st.handle([RawMessage("token-density", b"a", w.to_json())], now=0.0)
                if isinstance(r, Forecast)]
    by = {f.target: f for f in outs}
    assert set(by) == {"requests", "prompt_tokens", "output_tokens"}
    assert by["requests"].first_window_start == 240.0 and len(by["requests"].mean) == 3
    assert np.allclose(by["requests"].mean, 13.0) and all(u >= m for u, m in zip(by["requests"].upper,
                                                                                  by["requests"].mean, strict=True))
