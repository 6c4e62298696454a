"""Inter-token latency (ITL) over *tokens*: a weighted log-binned histogram the simulated engines feed.

A per-request mean (TPOT) hides the stalls a user sees: a decode batch paused by a prefill-only step, or a
sequence preempted and re-prefilled. The SLO of issue 15 is a P99 over every gap between consecutive output
tokens of every request, so the engines add ``(gap, weight)`` pairs here, ``weight`` tokens at a time (a decode
step of ``n`` sequences is ``n`` gaps of the same length), without storing a value per token: a run of 1M
requests produces ~10^8 gaps.

Bins are logarithmic from :data:`LO` to :data:`HI` (0.1 ms .. 1000 s), each ``1 + REL`` wide, so a percentile
read at a bin's geometric centre is within ``sqrt(1 + REL) - 1`` (~0.25%) of the exact weighted percentile; one
extra bin on each side catches gaps below ``LO`` (reported as ``LO``) and above ``HI`` (reported as ``HI``). The
exact weighted sum is kept beside the bins, so the mean ITL is exact.

The bin counts are a Python list while a run adds to them (a scalar ``+=`` on a list is several times cheaper
than on a numpy array, and the engines add at every decode step); :attr:`weights` is the numpy view of them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ItlHistogram", "LO", "HI", "REL"]

LO = 1e-4  # s: the smallest gap resolved (a decode step is >= ~5 ms on any real engine)
HI = 1e3  # s: the largest (a preempted sequence that waits 16 minutes for its re-prefill)
REL = 0.005  # relative bin width: percentiles within ~0.25% of the exact value

_RATIO = 1.0 + REL
_LOG_RATIO = math.log(_RATIO)
_NBINS = math.ceil(math.log(HI / LO) / _LOG_RATIO)  # 3,232 log bins, plus an under- and an overflow bin


class ItlHistogram:
    """Weighted histogram of inter-token gaps (seconds). Add with :meth:`add`, combine with :meth:`merge`."""

    __slots__ = ("_w", "total", "sum")

    def __init__(self) -> None:
        self._w: list[float] = [0.0] * (_NBINS + 2)  # [0]: gap < LO; [1.._NBINS]: log bins; [-1]: gap >= HI
        self.total = 0.0  # total weight (tokens)
        self.sum = 0.0  # exact sum of gap x weight

    @staticmethod
    def bin_of(gap_s: float) -> int:
        """Index of the bin ``gap_s`` falls in (0: below ``LO``; ``_NBINS + 1``: at or above ``HI``)."""
        if gap_s < LO:
            return 0
        b = int(math.log(gap_s / LO) / _LOG_RATIO) + 1
        return b if b <= _NBINS else _NBINS + 1

    def add(self, gap_s: float, weight: float) -> None:
        """Count ``weight`` tokens whose gap from the previous token of their sequence was ``gap_s``."""
        if gap_s < LO:
            b = 0
        else:
            b = int(math.log(gap_s / LO) / _LOG_RATIO) + 1
            if b > _NBINS:
                b = _NBINS + 1
        self._w[b] += weight
        self.total += weight
        self.sum += gap_s * weight

    def merge(self, other: ItlHistogram) -> None:
        """Add ``other``'s tokens to this histogram (e.g. the instances of one run, or runs of one service)."""
        w = self._w
        for i, x in enumerate(other._w):
            if x:
                w[i] += x
        self.total += other.total
        self.sum += other.sum

    @property
    def weights(self) -> np.ndarray:
        """Bin weights as a numpy array (``[under, log bins..., over]``)."""
        return np.asarray(self._w, dtype=np.float64)

    def mean(self) -> float | None:
        """Exact weighted mean gap (None when empty)."""
        return self.sum / self.total if self.total > 0 else None

    def percentile(self, q: float) -> float | None:
        """The ``q``-th weighted percentile (0..100) of the gaps, at its bin's geometric centre; None when empty.

        It is the gap of the token at cumulative weight ``q% x total`` (the lower weighted percentile: no
        interpolation between bins, which are 0.5% apart)."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile q must be in [0, 100], got {q}")
        if self.total <= 0:
            return None
        w = self.weights
        cum = np.cumsum(w)
        target = q / 100.0 * float(cum[-1])  # cum[-1], not total: the same float sums as the search
        b = int(np.searchsorted(cum, target, side="left")) if target > 0 else int(np.flatnonzero(w)[0])
        b = min(b, len(w) - 1)
        if b == 0:
            return LO
        if b == _NBINS + 1:
            return HI
        return LO * _RATIO ** (b - 0.5)
