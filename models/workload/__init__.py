"""Service-workload forecaster: token density windows in, multi-step forecasts (mean + upper quantile) out.

Public entry points: :class:`OnlineForecaster` (live scaler / ``forecast`` agent), :func:`fit_forecaster`,
the mLSTM in :mod:`models.workload.mlstm`, baselines in :mod:`models.workload.baselines`.
"""

from models.workload.features import TARGETS
from models.workload.online import MODEL_NAMES, ForecastOut, OnlineForecaster

__all__ = ["TARGETS", "MODEL_NAMES", "ForecastOut", "OnlineForecaster"]
