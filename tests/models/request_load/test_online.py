"""Online correction: a service whose lengths drift x1.5 is re-calibrated from its completions."""

from __future__ import annotations

import numpy as np
import pytest

from models.request_load.base_predictor import LengthPredictions
from models.request_load.calibration import OUTPUT_TAUS, quantile_name
from models.request_load.online import OnlineConfig, OnlineCorrection

SIGMA = 0.5  # log-space spread of true lengths around each request's median


def _calibrated(median: np.ndarray) -> LengthPredictions:
    """Exact quantiles of y = median * exp(SIGMA * N(0, 1)) (a perfectly calibrated base predictor)."""
    from statistics import NormalDist

    q = {quantile_name(t): median * np.exp(SIGMA * NormalDist().inv_cdf(t)) for t in OUTPUT_TAUS}
    return LengthPredictions(mean=median * np.exp(SIGMA**2 / 2), p90=q["p90"], source="model", quantiles=q)


def _stream(n: int, rng: np.random.Generator, drift: float) -> tuple[LengthPredictions, np.ndarray]:
    median = np.exp(rng.uniform(np.log(30), np.log(800), n))
    return _calibrated(median), median * drift * np.exp(SIGMA * rng.standard_normal(n))


def _run(corr: OnlineCorrection, base: LengthPredictions, actual: np.ndarray, service: str) -> np.ndarray:
    """Predict-then-complete one request at a time (as the agent sees them); the corrected p90 of each."""
    out = np.empty(actual.size)
    for i in range(actual.size):
        row = LengthPredictions(mean=base.mean[i:i + 1], p90=base.p90[i:i + 1], source="model",
                                quantiles={k: v[i:i + 1] for k, v in base.quantiles.items()})
        rid = f"{service}-{i}"
        corr.remember([rid], [service], row)
        out[i] = corr.correct([service], row).p90[0]
        assert corr.complete(rid, float(actual[i]))
    return out


def test_drift_x15_recovers_p90_coverage_within_500_completions() -> None:
    rng = np.random.default_rng(0)
    corr = OnlineCorrection(OnlineConfig())
    base, actual = _stream(1000, rng, 1.0)
    p90 = _run(corr, base, actual, "svc")
    assert 0.87 <= float((actual <= p90).mean()) <= 0.93  # calibrated base, no drift: stays calibrated
    base, actual = _stream(3000, rng, 1.5)  # the service's model got 1.5x more verbose
    uncorrected = float((actual <= base.p90).mean())
    assert uncorrected < 0.80  # the drift really breaks the base's p90 (about 0.74)
    p90 = _run(corr, base, actual, "svc")
    after = actual[500:] <= p90[500:]
    assert 0.85 <= float(after.mean()) <= 0.95
    for chunk in np.array_split(after, 5):  # and it stays there, not only on average
        assert 0.83 <= float(chunk.mean()) <= 0.97
    assert corr.mean_scale("svc") == pytest.approx(1.5, rel=0.1)


def test_other_services_are_untouched_and_memory_is_bounded() -> None:
    rng = np.random.default_rng(1)
    corr = OnlineCorrection(OnlineConfig(window=64, max_services=3, max_pending=10))
    base, actual = _stream(200, rng, 1.5)
    _run(corr, base, actual, "a")
    fresh = corr.correct(["b"], base)  # no completion of "b" yet: the base answers unchanged
    np.testing.assert_allclose(fresh.p90, base.p90)
    np.testing.assert_allclose(fresh.mean, base.mean)
    for name in ("b", "c", "d"):
        corr.observe(name, 10.0, 20.0, 40.0, 22.0, 25.0)
    assert corr.services == ["b", "c", "d"]  # "a" (least recently updated) was dropped
    assert len(corr._services["b"].z) <= 64
    corr.remember([f"r{i}" for i in range(20)], ["b"] * 20, _calibrated(np.full(20, 100.0)))
    assert corr.pending == 10
    assert not corr.complete("r0", 50.0)  # evicted: counted, not learned
    assert corr.unmatched == 1 and corr.complete("r19", 50.0)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        OnlineConfig(window=0)
    with pytest.raises(ValueError):
        OnlineConfig(cap_ratio=1.0)
