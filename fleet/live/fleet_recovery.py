"""What a restarted ``preserve fleet`` recovers from the log of its own partitions (pure: records in, state out).

Why: the fleet's state lives in one process (instances, queued requests). Restarted after SIGTERM or kill -9, a
fresh process used to have no instances (the bootstrap command was consumed long ago), the router still believed
the old instances READY, and the requests that were in flight sat there forever. Every fact needed is in the
service-keyed topics of the partitions the process is assigned, so on every assignment it reads them from the
start (``fleet_runner``) and folds them here:

- ``scale-commands``: the last command per service is the desired fleet (``target``);
- ``instance-events``: the last event per instance says which instances were alive (not STOPPED): the simulated
  fleet re-creates them under the same ids, so the router's view stays true; real engines died with the old
  manager (``PR_SET_PDEATHSIG``), so they are reported STOPPED and the router learns they are gone;
- ``routes`` minus ``completions``: the requests that never completed (in flight when the manager stopped, or not
  yet consumed): they are run again, each exactly once (every routed id is remembered, so a redelivered route is
  a duplicate); their arrival is kept, so the downtime shows in their measured latency;
- ``dead-letter`` records of failed requests (``source_topic = "routes"``, ``key`` = the request id): failed
  once, with their reason, and not run again.

The read is bounded by the topics' retention (a week of raw events); a compacted per-service state topic would
bound it by the fleet's size instead (not built).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.records import (
    Completion,
    DeadLetter,
    EventRecord,
    InstanceEvent,
    InstanceState,
    RouteDecision,
    ScaleCommand,
)

__all__ = ["FleetLog", "ServiceLog", "RECOVERY_TOPICS", "FAILED_SOURCE"]

RECOVERY_TOPICS = ("scale-commands", "instance-events", "routes", "completions", "dead-letter")
FAILED_SOURCE = "routes"  # a request the managers gave up on is dead-lettered as a bad route, keyed by its id


@dataclass
class ServiceLog:
    """One service's facts in the log."""

    command: ScaleCommand | None = None  # the last scale command
    instances: dict[str, InstanceEvent] = field(default_factory=dict)  # instance id -> its last event
    routes: dict[str, RouteDecision] = field(default_factory=dict)  # request id -> route, while not done
    done: set[str] = field(default_factory=set)  # completed or failed request ids (only ids are kept of them)
    last_ts: float = 0.0  # the latest event time of the service's fleet in the log

    def alive(self) -> list[InstanceEvent]:
        """Instances whose last event is not a stop, by id."""
        return [ev for _, ev in sorted(self.instances.items()) if ev.state is not InstanceState.STOPPED]

    def unfinished(self) -> list[RouteDecision]:
        """Routes with neither a completion nor a failure, in event-time order."""
        return sorted((r for rid, r in self.routes.items() if rid not in self.done), key=lambda r: (r.ts, r.request_id))


class FleetLog:
    """The fold of the recovery topics' records (any order across topics; within a topic, partition order)."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceLog] = {}
        self.failed: set[str] = set()  # request ids the managers gave up on (with a dead letter)
        self.records = 0
        self.unread = 0  # partitions the reader could not read to their end (set by the reader)
        self.partitions: dict[str, int] = {}  # service -> the partition its records came from (when given)

    def _svc(self, service: str) -> ServiceLog:
        return self.services.setdefault(service, ServiceLog())

    def add(self, rec: EventRecord, partition: int | None = None) -> None:
        self.records += 1
        service = getattr(rec, "service", None)
        if partition is not None and service is not None:
            self.partitions[service] = partition
        if isinstance(rec, ScaleCommand):
            s = self._svc(rec.service)
            s.command = rec
        elif isinstance(rec, InstanceEvent):
            s = self._svc(rec.service)
            old = s.instances.get(rec.instance_id)
            if old is None or rec.ts >= old.ts:
                s.instances[rec.instance_id] = rec
            s.last_ts = max(s.last_ts, rec.ts)
        elif isinstance(rec, RouteDecision):
            s = self._svc(rec.service)
            if rec.request_id not in s.done:
                s.routes.setdefault(rec.request_id, rec)
        elif isinstance(rec, Completion):
            s = self._svc(rec.service)
            s.done.add(rec.request_id)
            s.routes.pop(rec.request_id, None)  # a week of routes must not be held whole: done ones are ids only
            s.last_ts = max(s.last_ts, rec.ts)
        elif isinstance(rec, DeadLetter) and rec.source_topic == FAILED_SOURCE and rec.key and rec.offset is None:
            self.failed.add(rec.key)  # the managers' own "failed after N tries" letter (a bad message has an offset)

    def finish(self) -> FleetLog:
        """Mark the failed requests done in their services (a dead letter names no service)."""
        for s in self.services.values():
            for rid in self.failed & s.routes.keys():
                s.done.add(rid)
                del s.routes[rid]
        return self
