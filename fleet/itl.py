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

Adding is the engines' hot path (every decode work item), so :meth:`add` only appends to two ``array('d')``
buffers (raw doubles: no float object is kept alive, and numpy reads them without conversion); the pairs are
binned with numpy in blocks of :data:`FLUSH_AT`, and before anything reads the histogram.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

__all__ = ["ItlHistogram", "LO", "HI", "REL", "FLUSH_AT"]

LO = 1e-4  # s: the smallest gap resolved (a decode step is >= ~5 ms on any real engine)
HI = 1e3  # s: the largest (a preempted sequence that waits 16 minutes for its re-prefill)
REL = 0.005  # relative bin width: percentiles within ~0.25% of the exact value
FLUSH_AT = 1 << 16  # pairs buffered before they are binned (1 MB of doubles)

_RATIO = 1.0 + REL
_LOG_RATIO = math.log(_RATIO)
_NBINS = math.ceil(math.log(HI / LO) / _LOG_RATIO)  # 3,232 log bins, plus an under- and an overflow bin


class ItlHistogram:
    """Weighted histogram of inter-token gaps (seconds). Add with :meth:`add`, combine with :meth:`merge`.

    ``gaps``/``weights_in`` are the pairs added since the last binning; an engine may append to them directly
    (in pairs, then flush at :data:`FLUSH_AT`).
    """

    __slots__ = ("_bins", "_total", "_sum", "gaps", "weights_in")

    def __init__(self) -> None:
        self._bins = np.zeros(_NBINS + 2)  # [0]: gap < LO; [1.._NBINS]: log bins; [-1]: gap >= HI
        self._total = 0.0  # total weight (tokens) binned
        self._sum = 0.0  # sum of gap x weight binned
        self.gaps = array("d")
        self.weights_in = array("d")

    @staticmethod
    def bins_of(gaps_s: np.ndarray) -> np.ndarray:
        """Bin index of each gap (0: below ``LO``; ``_NBINS + 1``: at or above ``HI``)."""
        g = np.asarray(gaps_s, dtype=np.float64)
        idx = np.zeros(g.shape, dtype=np.int64)
        pos = g >= LO
        idx[pos] = np.minimum((np.log(g[pos] / LO) / _LOG_RATIO).astype(np.int64) + 1, _NBINS + 1)
        return idx

    @classmethod
    def bin_of(cls, gap_s: float) -> int:
        """Index of the bin ``gap_s`` falls in (the same arithmetic as the binning)."""
        return int(cls.bins_of(np.array([gap_s]))[0])

    def add(self, gap_s: float, weight: float) -> None:
        """Count ``weight`` tokens whose gap from the previous token of their sequence was ``gap_s``."""
        self.gaps.append(gap_s)
        self.weights_in.append(weight)
        if len(self.gaps) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Bin the pairs added since the last flush."""
        if not self.gaps:
            return
        g = np.frombuffer(self.gaps, dtype=np.float64)  # views: no copy
        w = np.frombuffer(self.weights_in, dtype=np.float64)
        self._bins += np.bincount(self.bins_of(g), weights=w, minlength=_NBINS + 2)
        self._total += float(w.sum())
        self._sum += float((g * w).sum())  # not np.dot: BLAS may wake threads that spin on other cores
        del g, w  # release the views: an array exporting its buffer cannot be resized
        del self.gaps[:]  # in place: an engine holds these buffers
        del self.weights_in[:]

    def merge(self, other: ItlHistogram) -> None:
        """Add ``other``'s tokens to this histogram (e.g. the instances of one run, or runs of one service)."""
        self.flush()
        other.flush()
        self._bins += other._bins
        self._total += other._total
        self._sum += other._sum

    @property
    def total(self) -> float:
        """Total weight (tokens)."""
        self.flush()
        return self._total

    @property
    def sum(self) -> float:
        """Sum of gap x weight (seconds x tokens)."""
        self.flush()
        return self._sum

    @property
    def weights(self) -> np.ndarray:
        """Bin weights (``[under, log bins..., over]``), a copy."""
        self.flush()
        return self._bins.copy()

    def mean(self) -> float | None:
        """Weighted mean gap (None when empty)."""
        total = self.total
        return self._sum / total if total > 0 else None

    def percentile(self, q: float) -> float | None:
        """The ``q``-th weighted percentile (0..100) of the gaps, at its bin's geometric centre; None when empty.

        It is the gap of the token at cumulative weight ``q% x total`` (the lower weighted percentile: no
        interpolation between bins, which are 0.5% apart)."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile q must be in [0, 100], got {q}")
        if self.total <= 0:
            return None
        w = self._bins
        cum = np.cumsum(w)
        target = q / 100.0 * float(cum[-1])  # cum[-1], not total: the same float sums as the search
        b = int(np.searchsorted(cum, target, side="left")) if target > 0 else int(np.flatnonzero(w)[0])
        b = min(b, len(w) - 1)
        if b == 0:
            return LO
        if b == _NBINS + 1:
            return HI
        return float(LO * _RATIO ** (b - 0.5))
