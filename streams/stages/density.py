"""State of the `density` agent: completions -> per-service tumbling windows in event time (no I/O).

Wraps :class:`streams.policies.density_windows.DensityAccumulator` (the same rules as the offline ``density_series``).
Crash safety: the agent stores each changed service's :meth:`snapshot` in a changelog-backed Faust table
(``streams/transport/tables.py``). Faust flushes the changelog before it commits source offsets, so after a kill -9 the
restored snapshot covers at least every committed completion; completions redelivered after it are recognised
by their offset (a snapshot records the last offset it counted: a service's completions share one partition,
keyed by service) and skipped. Within a run, completions are also deduplicated by request id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.policies.density_windows import DensityAccumulator
from streams.records import Completion, EventRecord
from streams.stages.recent_ids import RecentIds
from streams.transport.messages import RawMessage, parse_messages

__all__ = ["DensityAgentState", "Snapshot"]

Snapshot = dict[str, Any]


class DensityAgentState:
    """:param window_s: window size (event seconds). :param grace_s: late completions still counted."""

    REPORTS = frozenset({"completions"})  # the density agent is the one that dead-letters bad completions

    def __init__(self, window_s: float, grace_s: float) -> None:
        self.acc = DensityAccumulator(window_s, grace_s)
        self.duplicates = 0
        self.late = 0
        self._seen = RecentIds()  # completions counted (redelivery check), forgotten after 15 event minutes
        self._last_offset: dict[str, int] = {}  # service -> offset of the last completion counted
        self._touched: set[str] = set()
        self._known: set[str] = set()  # services whose stored snapshot was looked up (once each)

    def add(self, c: Completion, offset: int | None = None) -> bool:
        """Count one completion (``offset``: its Kafka offset, for redelivery after a restore)."""
        if c.request_id in self._seen or (offset is not None and offset <= self._last_offset.get(c.service, -1)):
            self.duplicates += 1
            return False
        self._seen.add(c.request_id, c.ts)
        if offset is not None:
            self._last_offset[c.service] = offset
        ok = self.acc.add(c)
        self.late += not ok
        return ok

    def snapshot(self, service: str) -> Snapshot | None:
        snap = self.acc.snapshot(service)
        if snap is not None:
            snap["last_offset"] = self._last_offset.get(service, -1)
        return snap

    def restore(self, service: str, snap: Snapshot) -> None:
        self.acc.restore(service, snap)
        self._last_offset[service] = int(snap.get("last_offset", -1))
        self._known.add(service)

    def handle(self, msgs: list[RawMessage], now: float,
               stored: Callable[[str], Snapshot | None] | None = None) -> list[EventRecord]:
        """Count a batch of completions; return the dead letters and every window that closed.

        ``stored(service)`` gives a service's last stored snapshot: it is restored the first time this state
        sees the service (after a restart or a rebalance). :meth:`take_snapshots` then gives what to store."""
        out: list[EventRecord] = []
        for m in msgs:
            good, bad = parse_messages([m], now, self.REPORTS)
            out += bad
            for rec in good:
                if isinstance(rec, Completion):
                    self._restore_once(rec.service, stored)
                    self.add(rec, m.offset)
                    self._touched.add(rec.service)
        self.acc.take_late()
        out += self.acc.close_until()
        return out

    def take_snapshots(self) -> dict[str, Snapshot]:
        """Snapshots of the services changed since the last call (for the changelog-backed table)."""
        touched, self._touched = self._touched, set()
        return {s: snap for s in sorted(touched) if (snap := self.snapshot(s)) is not None}

    def _restore_once(self, service: str, stored: Callable[[str], Snapshot | None] | None) -> None:
        if service in self._known:
            return
        self._known.add(service)
        snap = stored(service) if stored is not None else None
        if snap is not None:
            self.restore(service, snap)
