"""Kafka edge of the instance managers: consume routes + scale commands, publish completions + instance events.

The `requests` topic is read too, for arrival times only: the simulated fleet's clock waits at the oldest
arrival whose route has not come (``FleetManager.hold_at``), so a slow control plane never makes it apply a
decision late.

confluent-kafka on both sides. Routes and scale commands are keyed by service and the two topics have the same
partition count; the range assignor gives one member the same partitions of both, so several ``preserve fleet``
processes share services. Invalid input becomes a dead letter (this process is the only consumer that reports
those two topics' bad messages).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Producer

from fleet.live.event_clock import ReplayClock
from fleet.live.instance_manager import FleetManager
from streams.records import DeadLetter, EventRecord, RequestEvent, RouteDecision, ScaleCommand
from streams.settings import KafkaSettings
from streams.transport.dead_letters import parse_or_dead_letter
from streams.transport.producer_helper import PRODUCER_DEFAULTS

__all__ = ["FleetRunner", "RunnerStats"]

log = logging.getLogger(__name__)
_INPUTS: dict[str, type[RouteDecision] | type[ScaleCommand]] = {"routes": RouteDecision,
                                                                  "scale-commands": ScaleCommand}
ARRIVALS = "requests"  # read only for their arrival times (see FleetManager.expect); reported by `predict`


@dataclass
class RunnerStats:
    consumed: int = 0
    produced: int = 0
    dead_letters: int = 0


def _arrival(value: bytes | None) -> tuple[str, str, float] | None:
    """(request id, service, arrival ts) of a `requests` message; None if unreadable (`predict` reports it)."""
    try:
        rec = RequestEvent.model_validate_json(value or b"")
    except ValueError:
        return None
    return rec.request_id, rec.service, rec.ts


class FleetRunner:
    """:param manager: the event-time fleet. :param kafka: connection settings. :param clock: replay clock.
    :param group_id: consumer group of the instance managers."""

    def __init__(self, manager: FleetManager, kafka: KafkaSettings, clock: ReplayClock,
                 group_id: str = "preserve-fleet") -> None:
        self.manager = manager
        self.kafka = kafka
        self.clock = clock
        self.stats = RunnerStats()
        base = kafka.confluent_config()
        self.consumer = Consumer({**base, "group.id": group_id, "auto.offset.reset": "earliest",
                                  "partition.assignment.strategy": "range", "enable.auto.commit": True})
        self.producer = Producer({**base, **PRODUCER_DEFAULTS})
        self._by_topic = {kafka.topic(name): name for name in (*_INPUTS, ARRIVALS)}
        self.consumer.subscribe(list(self._by_topic))

    def _publish(self, recs: list[EventRecord]) -> None:
        for rec in recs:
            key = getattr(rec, "service", None)
            self.producer.produce(self.kafka.topic(rec.topic), key=key.encode() if key else None, value=rec.to_json())
            self.stats.produced += 1
            self.stats.dead_letters += isinstance(rec, DeadLetter)
        self.producer.poll(0)

    def poll_once(self, timeout_s: float = 0.05, max_messages: int = 2000) -> None:
        """Consume what is there, apply it in event time, run the fleet to the clock and publish."""
        msgs = self.consumer.consume(max_messages, timeout=timeout_s)
        wall = time.time()
        bad: list[EventRecord] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001  (librdkafka constant)
                    log.warning("consumer error: %s", err)
                continue
            name = self._by_topic.get(m.topic() or "", "")
            self.stats.consumed += 1
            if name == ARRIVALS:
                arrival = _arrival(m.value())
                if arrival is not None:
                    self.manager.expect(*arrival, wall)
                continue
            rec = parse_or_dead_letter(m.value(), _INPUTS[name], name, wall, m.key(), m.partition(), m.offset())
            if isinstance(rec, DeadLetter):
                bad.append(rec)
                continue
            self.clock.observe(rec.ts, wall)
            self.manager.offer(rec)
        now = self.clock.now(wall)
        if now is not None:
            now = min(now, max(self.manager.now, self.manager.hold_at(wall)))
        out = bad + (self.manager.advance(now) if now is not None else [])
        self._publish(out)

    def run(self, should_stop: Callable[[], bool], on_tick: Callable[[RunnerStats], None] | None = None) -> None:
        try:
            while not should_stop():
                self.poll_once()
                if on_tick is not None:
                    on_tick(self.stats)
        finally:
            self.producer.flush(10)
            self.consumer.close()
