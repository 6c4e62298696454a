"""The predict stage's online correction of length predictions, run offline inside the simulator.

Live, the predict agent corrects each service's predictions from the `completions` stream
(``models.request_load.online.OnlineCorrection``); offline the simulator does the same with the same class: a
request's prediction is corrected at its arrival by the completions seen so far, and its completion teaches the
correction — so a service whose lengths drift is re-calibrated in both drivers alike.
"""

from __future__ import annotations

import numpy as np

from fleet.sim_inputs import Workload
from models.request_load.base_predictor import LengthPredictions
from models.request_load.online import OnlineConfig, OnlineCorrection

__all__ = ["PredictionFeedback"]


class PredictionFeedback:
    """:param workload: the requests with their base predictions. :param window: completions per service kept."""

    def __init__(self, workload: Workload, window: int) -> None:
        if workload.predicted is None:
            raise ValueError("prediction feedback needs the workload's predictions")
        self.w = workload
        self.online = OnlineCorrection(OnlineConfig(window=window))
        self._p90 = workload.predicted_p90 if workload.predicted_p90 is not None else workload.predicted
        self._q = workload.quantiles or {}

    def predict(self, i: int) -> tuple[float, float]:
        """(expected length, p90) of request ``i`` as the predict stage would publish it now."""
        w = self.w
        assert w.predicted is not None
        base = LengthPredictions(mean=w.predicted[i:i + 1], p90=self._p90[i:i + 1], source=w.predictor_source,
                                 quantiles={k: v[i:i + 1] for k, v in self._q.items()})
        self.online.remember([w.request_ids[i]], [w.service], base)
        out = self.online.correct([w.service], base)
        return float(np.asarray(out.mean)[0]), float(np.asarray(out.p90)[0])

    def complete(self, request_id: str, output_tokens: int) -> None:
        self.online.complete(request_id, float(output_tokens))
