"""The predict stage's online correction of length predictions, run offline inside the simulator.

Live, the predict agent corrects each service's predictions from the `completions` stream
(``models.request_load.online.OnlineCorrection``); offline the simulator does the same with the same class: a
request's prediction is corrected at its arrival by the completions seen so far, and its completion teaches the
correction — so a service whose lengths drift is re-calibrated in both drivers alike.
"""

from __future__ import annotations

import math

import numpy as np

from fleet.sim_inputs import Workload
from models.request_load.online import OnlineConfig, OnlineCorrection, base_parts

__all__ = ["PredictionFeedback"]


class PredictionFeedback:
    """:param workload: the requests with their base predictions. :param window: completions per service kept.

    The simulator asks for one request at a time, so the correction of one row is computed here in scalar form
    from per-request parts precomputed once (vectorised): the same numbers as ``OnlineCorrection.correct`` on a
    batch of one (a test pins it), at a few microseconds instead of a batch call's hundreds.
    """

    def __init__(self, workload: Workload, window: int) -> None:
        if workload.predicted is None:
            raise ValueError("prediction feedback needs the workload's predictions")
        self.w = workload
        self.online = OnlineCorrection(OnlineConfig(window=window))
        self._p90 = workload.predicted_p90 if workload.predicted_p90 is not None else workload.predicted
        self._q = workload.quantiles or {}
        names = sorted(self._q, key=lambda k: int(k[1:])) or ["p90"]
        self._taus = tuple(int(k[1:]) / 100 for k in names)
        self._p90_col = names.index("p90") if "p90" in names else -1
        mean = np.asarray(workload.predicted, np.float64)
        p50 = np.asarray(self._q.get("p50", mean), np.float64)
        p10 = np.asarray(self._q.get("p10", p50), np.float64)
        qs = np.stack([np.asarray(self._q.get(k, self._p90), np.float64) for k in names], axis=1)  # (N, T)
        self._c, self._s = base_parts(p10, p50, np.asarray(self._p90, np.float64))
        self._z = (np.log1p(np.maximum(qs, 0.0)) - self._c[:, None]) / self._s[:, None]  # (N, T)
        self._row = (p10, p50, mean)

    def predict(self, i: int) -> tuple[float, float]:
        """(expected length, p90) of request ``i`` as the predict stage would publish it now."""
        w = self.w
        p10, p50, mean = self._row
        p90 = float(self._p90[i])
        self.online.remember_one(w.request_ids[i], w.service, float(p10[i]), float(p50[i]), p90, float(mean[i]))
        st = self.online.state(w.service)
        if st is None or not st.z:
            return max(float(mean[i]), 0.0), max(p90, 0.0)
        wt = self.online.weight(w.service)
        curve = st.window_quantiles(self._taus)
        c, s, z = float(self._c[i]), float(self._s[i]), self._z[i]
        best = -math.inf
        q90 = p90
        for j in range(len(self._taus)):  # np.maximum.accumulate over the corrected quantiles; without p90
            # among them (quantiles given, none named p90) the base p90 stands, as in the batch correction
            best = max(best, math.expm1(c + s * (wt * float(curve[j]) + (1 - wt) * float(z[j]))))
            if j == self._p90_col:
                q90 = best
        return max(float(mean[i]) * self.online.mean_scale(w.service), 0.0), max(q90, 0.0)

    def complete(self, request_id: str, output_tokens: int) -> None:
        self.online.complete(request_id, float(output_tokens))
