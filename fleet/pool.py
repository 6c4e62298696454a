"""A GPU pool shared by several services' fleets: the LMaaS setting, where one scale-up may have to wait.

Every instance that is not stopped (starting, ready or draining: its GPU is taken) counts against the pool. A
scale-up takes what is free at once; what is missing is the service's *deficit*, which waits. When any instance
stops, the freed GPUs go to the waiting services first come, first served (the time each began to wait) — what a
cluster scheduler does with pending pods. A new decision of the service replaces its deficit (a scale-down or an
unchanged target cancels the wait). Pure accounting, explicit time, no I/O.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["PoolMember", "InstancePool"]


class PoolMember(Protocol):
    """A service's fleet as the pool sees it: it can be handed instances it asked for."""

    def grant(self, count: int, t: float) -> None: ...


class InstancePool:
    """``capacity`` GPUs for every service together.

    :param capacity: instances (starting, ready or draining) that may exist at once, all services together.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"pool capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.used = 0
        self._waiting: dict[int, tuple[float, int, PoolMember, int]] = {}  # id(member) -> (since, seq, member, n)
        self._seq = 0
        self.waits = 0  # scale-ups that could not be served at once
        self.wait_instance_s = 0.0  # instance-seconds asked for but not granted (sum over waiting deficits)
        self._since_t = 0.0

    @property
    def free(self) -> int:
        return self.capacity - self.used

    def occupy(self, count: int) -> None:
        """Instances that exist before any decision (the warm fleets at t=0)."""
        if count > self.free:
            raise ValueError(f"the warm fleets need {self.used + count} instances; the pool has {self.capacity}")
        self.used += count

    def take(self, count: int) -> int:
        """Take up to ``count`` free GPUs now; returns how many were taken."""
        got = min(max(count, 0), self.free)
        self.used += got
        return got

    def want(self, member: PoolMember, deficit: int, t: float) -> None:
        """``member`` still needs ``deficit`` instances (0: it needs none; any earlier wait is cancelled)."""
        self._account(t)
        key = id(member)
        if deficit <= 0:
            self._waiting.pop(key, None)
            return
        old = self._waiting.get(key)
        if old is None:
            self.waits += 1
            self._seq += 1
            self._waiting[key] = (t, self._seq, member, deficit)
        else:
            self._waiting[key] = (old[0], old[1], member, deficit)

    def release(self, t: float) -> None:
        """One instance stopped at ``t``: its GPU goes to the longest-waiting service, if any."""
        self._account(t)
        self.used -= 1
        while self.free > 0 and self._waiting:
            key, (since, seq, member, deficit) = min(self._waiting.items(), key=lambda kv: kv[1][:2])
            got = self.take(deficit)
            if deficit - got > 0:
                self._waiting[key] = (since, seq, member, deficit - got)
            else:
                del self._waiting[key]
            member.grant(got, t)

    def waiting(self) -> int:
        """Instances asked for and not yet granted, all services together."""
        return sum(w[3] for w in self._waiting.values())

    def _account(self, t: float) -> None:
        self.wait_instance_s += self.waiting() * max(0.0, t - self._since_t)
        self._since_t = max(self._since_t, t)
