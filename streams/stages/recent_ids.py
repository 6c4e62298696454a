"""Request ids seen recently, for the duplicate check of a redelivery: bounded by event time, not only by count.

Why: the route stage remembered the last 200,000 ids per service. At a soak's 12.5 requests/s per service
that bound is reached after 4.4 hours, so for the first hours the set only grew (part of the control worker's
+9.4 MB/min, issue 21). Redeliveries come from Kafka replaying what was not committed yet: the agents commit
every few wall seconds, and a request still waiting for an instance is checked separately (its ids are held
until routed), so ids older than ``span_s`` of event time before the newest can be forgotten. Memory is then
flat: rate x ``span_s`` ids per service.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RecentIds", "DEDUP_SPAN_S", "DEDUP_CAP"]

DEDUP_SPAN_S = 900.0  # event seconds: 15 minutes, 90 wall seconds at a replay's --speedup 10
DEDUP_CAP = 200_000  # at most this many ids whatever their times (a burst)


class RecentIds:
    """``id in ids`` / ``ids.add(id, ts)``: ids whose event time lies within ``span_s`` of the newest seen,
    at most ``cap`` of them (the oldest go first). Approximate at the edge: eviction walks insertion order and
    stops at the first id young enough, so an out-of-order old id may stay a little longer (never shorter)."""

    def __init__(self, span_s: float = DEDUP_SPAN_S, cap: int = DEDUP_CAP) -> None:
        if span_s <= 0 or cap < 1:
            raise ValueError("span_s must be > 0 and cap >= 1")
        self.span_s = span_s
        self.cap = cap
        self.newest = float("-inf")
        self._ids: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, request_id: str, ts: float) -> None:
        self._ids[request_id] = ts
        self.newest = max(self.newest, ts)
        cut = self.newest - self.span_s
        ids = self._ids
        while ids and (len(ids) > self.cap or next(iter(ids.values())) < cut):
            ids.popitem(last=False)
