"""Batched request-load prediction for the `predict` agent (pure given a predictor; no Kafka).

Why batches: the encoder's cost is per forward pass, so the agent collects up to ``predict_batch`` requests
(``stream.take_events``) and predicts them in one call. If the predictor raises, the batch is answered by the
fallback and flagged (``predictor="fallback"``), so routing never stops for a model fault.

With a ``ServingPredictor`` the base predictions are remembered per request id, so the completion of a request
teaches the service's online correction (``ServingPredictor.complete``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from models.request_load.base_predictor import LengthPredictions, LengthPredictor
from models.request_load.serving import ServingPredictor
from streams.privacy import prompt_hash
from streams.records import PredictedRequest, RequestEvent

__all__ = ["predict_requests"]

log = logging.getLogger(__name__)

_CAP = 1e6  # PredictedRequest's bound (MAX_TOKENS)


def _run(predictor: LengthPredictor, reqs: Sequence[RequestEvent]) -> LengthPredictions:
    args = ([r.prompt for r in reqs], [r.prompt_tokens for r in reqs], [r.service for r in reqs])
    if isinstance(predictor, ServingPredictor):
        out, base = predictor.predict_with_base(*args)
        predictor.remember([r.request_id for r in reqs], args[2], base)
        return out
    return predictor.predict(*args)


def _clip(v: np.ndarray | None, i: int, floor: float = 0.0) -> float | None:
    return None if v is None else min(max(float(v[i]), floor), _CAP)


def predict_requests(reqs: Sequence[RequestEvent], predictor: LengthPredictor,
                     fallback: LengthPredictor | None = None) -> list[PredictedRequest]:
    """One :class:`PredictedRequest` per request, in order. ``fallback`` answers if ``predictor`` fails."""
    if not reqs:
        return []
    try:
        preds = _run(predictor, reqs)
    except Exception as e:  # a model fault must not stop routing: the fallback answers, flagged
        if fallback is None:
            raise
        log.warning("predictor failed (%s: %s); using the fallback for %d requests", type(e).__name__, e, len(reqs))
        preds = replace(_run(fallback, reqs), source="fallback")
    q = preds.quantiles
    out = []
    for i, r in enumerate(reqs):
        mean = _clip(preds.mean, i) or 0.0
        p50 = _clip(q.get("p50"), i)
        p90 = max(_clip(preds.p90, i) or 0.0, p50 or 0.0)
        fields = r.model_dump(exclude={"prompt"})
        out.append(PredictedRequest(**fields, predicted_tokens=mean, predicted_p90_tokens=p90, predictor=preds.source,
                                    predicted_p10_tokens=_clip(q.get("p10"), i), predicted_p50_tokens=p50,
                                    predicted_p99_tokens=_clip(q.get("p99"), i),
                                    service_unmapped=bool(preds.unmapped[i]) if preds.unmapped is not None else False,
                                    prompt_hash=prompt_hash(r.prompt) if r.prompt else None,
                                    prompt_chars=len(r.prompt) if r.prompt else None))
    return out
