"""The metrics and probes of a ``preserve fleet`` process (``--metrics-port``), refreshed from its poll loop.

Ready (``/readyz``) once the instance managers' consumer has partitions assigned; the liveness heartbeat beats
from the poll loop, so a loop stuck in an engine call turns ``/livez`` red. Once a second: instances per service
and state (``preserve_instances``) and the consumer lag of every assigned partition (``preserve_consumer_lag``),
from librdkafka's cached watermarks (no broker round trip in the loop).
"""

from __future__ import annotations

import time
from collections import Counter

from confluent_kafka import TopicPartition

from fleet.live.fleet_runner import FleetRunner
from streams.transport import metrics_server as m

__all__ = ["FleetProbes", "EVERY_S"]

EVERY_S = 1.0


class FleetProbes:
    """:param runner: the fleet's Kafka edge (its consumer and instance managers)."""

    def __init__(self, runner: FleetRunner, group: str = "preserve-fleet") -> None:
        self.runner = runner
        self.group = group
        self._next = 0.0
        self._instance_labels: set[tuple[str, str]] = set()
        m.health.require("partitions_assigned")

    def tick(self) -> None:
        now = time.monotonic()
        m.health.beat(now)
        if now < self._next:
            return
        self._next = now + EVERY_S
        assignment = self.runner.consumer.assignment()
        m.health.set_ready("partitions_assigned", bool(assignment))
        self._instances()
        self._lag(assignment)

    def _instances(self) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        for service, fleet in self.runner.manager.fleets.items():
            for inst in fleet.instances.values():
                counts[(service, str(getattr(inst.state, "value", inst.state)))] += 1
        for labels in self._instance_labels - set(counts):
            m.INSTANCES.labels(*labels).set(0)  # a state left empty reads 0, not its last count
        for labels, n in counts.items():
            m.INSTANCES.labels(*labels).set(n)
        self._instance_labels |= set(counts)

    def _lag(self, assignment: list[TopicPartition]) -> None:
        if not assignment:
            return
        consumer = self.runner.consumer
        for tp in consumer.position(assignment):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0 or tp.offset < 0:
                continue
            m.CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(max(0, high - tp.offset))
