"""State of the `density` agent: completions -> per-service tumbling windows in event time (no I/O).

Wraps :class:`streams.token_density.DensityAccumulator` (the same rules as the offline ``density_series``) with
a dedup of completions by request id, because Kafka redelivers after a crash and a completion counted twice
would inflate the window the forecaster learns from.
"""

from __future__ import annotations

from collections import OrderedDict

from streams.messages import RawMessage, parse_messages
from streams.records import Completion, EventRecord
from streams.token_density import DensityAccumulator

__all__ = ["DensityAgentState"]

DEDUP_WINDOW = 200_000


class DensityAgentState:
    """:param window_s: window size (event seconds). :param grace_s: late completions still counted."""

    REPORTS = frozenset({"completions"})  # the density agent is the one that dead-letters bad completions

    def __init__(self, window_s: float, grace_s: float) -> None:
        self.acc = DensityAccumulator(window_s, grace_s)
        self.duplicates = 0
        self.late = 0
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, c: Completion) -> bool:
        if c.request_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[c.request_id] = None
        if len(self._seen) > DEDUP_WINDOW:
            self._seen.popitem(last=False)
        ok = self.acc.add(c)
        self.late += not ok
        return ok

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        """Count a batch of completions; return the dead letters and every window that closed."""
        good, bad = parse_messages(msgs, now, self.REPORTS)
        for rec in good:
            if isinstance(rec, Completion):
                self.add(rec)
        self.acc.take_late()
        return [*bad, *self.acc.close_until()]
