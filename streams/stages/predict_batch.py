"""Batched request-load prediction for the `predict` agent (pure given a predictor; no Kafka).

Why batches: the encoder's cost is per forward pass, so the agent collects up to ``predict_batch`` requests
(``stream.take_events``) and predicts them in one call. If the predictor raises, the batch is answered by the
fallback and flagged (``predictor="fallback"``), so routing never stops for a model fault.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from models.request_load.base_predictor import LengthPredictions, LengthPredictor
from streams.records import PredictedRequest, RequestEvent, prompt_hash

__all__ = ["predict_requests"]

log = logging.getLogger(__name__)


def _run(predictor: LengthPredictor, reqs: Sequence[RequestEvent]) -> LengthPredictions:
    return predictor.predict([r.prompt for r in reqs], [r.prompt_tokens for r in reqs], [r.service for r in reqs])


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
        preds = _run(fallback, reqs)
        preds = LengthPredictions(preds.mean, preds.p90, "fallback")
    out = []
    for i, r in enumerate(reqs):
        mean = min(max(float(preds.mean[i]), 0.0), 1e6)
        p90 = min(max(float(preds.p90[i]), mean), 1e6)
        fields = r.model_dump(exclude={"prompt"})
        out.append(PredictedRequest(**fields, predicted_tokens=mean, predicted_p90_tokens=p90, predictor=preds.source,
                                    prompt_hash=prompt_hash(r.prompt) if r.prompt else None,
                                    prompt_chars=len(r.prompt) if r.prompt else None))
    return out
