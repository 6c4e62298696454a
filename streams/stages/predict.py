"""State of the `predict` agent: the predictor (GPU when there is one) and its fallback (no Kafka I/O)."""

from __future__ import annotations

import logging

from models.request_load.base_predictor import LengthPredictor
from models.request_load.predictor_registry import get_predictor
from streams.records import EventRecord, RequestEvent
from streams.stages.predict_batch import predict_requests
from streams.transport.messages import RawMessage, parse_messages

__all__ = ["PredictAgentState", "default_device"]

log = logging.getLogger(__name__)


def default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


class PredictAgentState:
    """:param spec: predictor spec (``model``, ``fallback``, ...); the model runs on the GPU when present.
    :param max_lag_s: when the oldest request of a batch has waited longer than this (its Kafka time to ``now``),
        the batch is answered by the fallback, flagged ``fallback`` in each PredictedRequest: the model's
        per-forward timeout cannot see a queue building up in front of it, and a late prediction delays routing
        more than a coarse one costs. 0 turns it off. Compares the producer's clock with this worker's.
    """

    REPORTS = frozenset({"requests"})

    def __init__(self, spec: str, max_lag_s: float = 0.0) -> None:
        self.max_lag_s = max_lag_s
        self.lagged_batches = 0
        self.fallback: LengthPredictor = get_predictor("fallback")
        # Only the encoder takes long enough to be worth a thread: the others are table look-ups, for which the
        # hand-over to a thread cost more than the prediction (and the GIL hand-offs slowed the event loop).
        self.off_loop = spec.startswith("model")
        ctx = {"device": default_device()} if self.off_loop else {}
        self.predictor: LengthPredictor = get_predictor(spec, **ctx)
        log.info("predict agent: predictor %s", spec)

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        good, bad = parse_messages(msgs, now, self.REPORTS)
        reqs = [r for r in good if isinstance(r, RequestEvent)]
        if self._lagging(msgs, now):
            self.lagged_batches += 1
            if self.lagged_batches == 1 or self.lagged_batches % 100 == 0:
                log.warning("predict agent: requests waited > %.2f s; the fallback answered %d batches so far",
                            self.max_lag_s, self.lagged_batches)
            return [*bad, *predict_requests(reqs, self.fallback)]
        return [*bad, *predict_requests(reqs, self.predictor, self.fallback)]

    def _lagging(self, msgs: list[RawMessage], now: float) -> bool:
        if not (self.off_loop and self.max_lag_s > 0):
            return False  # table look-ups never queue: only the encoder is worth skipping
        stamps = [m.timestamp for m in msgs if m.timestamp is not None]
        return bool(stamps) and now - min(stamps) > self.max_lag_s
