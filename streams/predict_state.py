"""State of the `predict` agent: the predictor (GPU when there is one) and its fallback (no Kafka I/O)."""

from __future__ import annotations

import logging

from models.request_load.base_predictor import LengthPredictor
from models.request_load.predictor_registry import get_predictor
from streams.messages import RawMessage, parse_messages
from streams.predict_batch import predict_requests
from streams.records import EventRecord, RequestEvent

__all__ = ["PredictAgentState", "default_device"]

log = logging.getLogger(__name__)


def default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


class PredictAgentState:
    """:param spec: predictor spec (``model``, ``fallback``, ...); the model runs on the GPU when present."""

    REPORTS = frozenset({"requests"})

    def __init__(self, spec: str) -> None:
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
        return [*bad, *predict_requests(reqs, self.predictor, self.fallback)]
