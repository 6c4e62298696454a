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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, Message, Producer

from fleet.live.event_clock import ReplayClock, ServiceClocks, SpeedupCheck
from fleet.live.instance_manager import FleetManager
from streams.records import DeadLetter, EventRecord, RequestEvent, RouteDecision, ScaleCommand
from streams.settings import KafkaSettings
from streams.transport.dead_letters import parse_or_dead_letter
from streams.transport.event_skew import EventSkewGuard, SkewSettings
from streams.transport.producer_helper import PRODUCER_DEFAULTS

__all__ = ["FleetInput", "FleetInputs", "FleetRunner", "RunnerStats"]

log = logging.getLogger(__name__)
_INPUTS: dict[str, type[RouteDecision] | type[ScaleCommand]] = {"routes": RouteDecision,
                                                                  "scale-commands": ScaleCommand}
ARRIVALS = "requests"  # read only for their arrival times (see FleetManager.expect); reported by `predict`


@dataclass
class RunnerStats:
    consumed: int = 0
    produced: int = 0
    dead_letters: int = 0
    skewed_arrivals: int = 0  # arrivals outside the stream's event-time window (`predict` dead-letters them)
    speedup_mismatch: str | None = None  # why --speedup does not match the event stream (None: it does)


def _arrival(value: bytes | None) -> tuple[str, str, float] | None:
    """(request id, service, arrival ts) of a `requests` message; None if unreadable (`predict` reports it)."""
    try:
        rec = RequestEvent.model_validate_json(value or b"")
    except ValueError:
        return None
    return rec.request_id, rec.service, rec.ts


@dataclass(frozen=True, slots=True)
class FleetInput:
    """One consumed message, as the pure part of the runner sees it. ``sent_at``: the producer's send time (its
    Kafka CreateTime) if known: the speedup check must not take a backlog read at once for a fast stream."""

    name: str  # logical topic: routes, scale-commands or requests
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None
    sent_at: float | None = None


class FleetInputs:
    """The runner without Kafka (pure: explicit wall time): inputs -> the fleet, per-service clocks -> records.

    Every service runs on its own :class:`ReplayClock` (``ServiceClocks``): a route or command stamped far off
    re-anchors its own service's clock only. Arrivals outside the window around the stream's event time are
    ignored (``predict`` dead-letters them, so their route never comes and holding their service for them would
    stall it); the others feed the speedup check.

    :param manager: the event-time fleet. :param clock: the settings every service's clock is made with.
    :param skew: the arrivals' window (default: the stream's own clock at the clock's speedup)."""

    def __init__(self, manager: FleetManager, clock: ReplayClock, skew: SkewSettings | None = None) -> None:
        self.manager = manager
        self.clocks = ServiceClocks(lambda: ReplayClock(clock.speedup, clock.base_lag_s, clock.max_lag_s,
                                                        clock.margin, clock.window_s))
        self.arrival_skew = EventSkewGuard(skew or SkewSettings(speedup=clock.speedup))
        self.speedup_check = SpeedupCheck(clock.speedup)
        self.stats = RunnerStats()

    def handle(self, msgs: Sequence[FleetInput], wall: float) -> list[EventRecord]:
        """Apply a batch at ``wall``; run every service to its clock; the records to publish."""
        bad: list[EventRecord] = []
        for m in msgs:
            self.stats.consumed += 1
            if m.name == ARRIVALS:
                arrival = _arrival(m.value)
                if arrival is None:
                    continue
                if self.arrival_skew.check(arrival[2], wall) is not None:
                    self.stats.skewed_arrivals += 1
                    continue
                self.speedup_check.observe(arrival[2], m.sent_at if m.sent_at is not None else wall)
                self.manager.expect(*arrival, wall)
                continue
            rec = parse_or_dead_letter(m.value, _INPUTS[m.name], m.name, wall, m.key, m.partition, m.offset)
            if isinstance(rec, DeadLetter):
                bad.append(rec)
                continue
            self.clocks.observe(rec.service, rec.ts, wall)
            self.manager.offer(rec)
        nows = self.clocks.now(wall)
        holds = self.manager.holds(wall)
        for service, t in nows.items():
            nows[service] = min(t, max(self.manager.service_now(service), holds.get(service, float("inf"))))
        self.stats.speedup_mismatch = self.speedup_check.mismatch()
        return bad + self.manager.advance(nows)


def _sent_at(m: Message) -> float | None:
    kind, ms = m.timestamp()
    return ms / 1000.0 if kind == TIMESTAMP_CREATE_TIME and ms > 0 else None


class FleetRunner:
    """:param manager: the event-time fleet. :param kafka: connection settings. :param clock: the settings of
    every service's replay clock (see :class:`FleetInputs`). :param group_id: consumer group of the instance
    managers. :param skew: the arrivals' event-time window (see :class:`FleetInputs`)."""

    def __init__(self, manager: FleetManager, kafka: KafkaSettings, clock: ReplayClock,
                 group_id: str = "preserve-fleet", skew: SkewSettings | None = None) -> None:
        self.manager = manager
        self.kafka = kafka
        self.clock = clock
        self.inputs = FleetInputs(manager, clock, skew)
        self.stats = self.inputs.stats
        self._next_speedup_warning = 0.0
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
        batch: list[FleetInput] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001  (librdkafka constant)
                    log.warning("consumer error: %s", err)
                continue
            batch.append(FleetInput(self._by_topic.get(m.topic() or "", ""), m.value(), m.key(), m.partition(),
                                    m.offset(), _sent_at(m)))
        self._publish(self.inputs.handle(batch, wall))
        why = self.stats.speedup_mismatch
        if why is not None and wall >= self._next_speedup_warning:  # loudly, once a minute while it lasts
            self._next_speedup_warning = wall + 60.0
            log.error("SPEEDUP MISMATCH: %s", why)

    def run(self, should_stop: Callable[[], bool], on_tick: Callable[[RunnerStats], None] | None = None) -> None:
        try:
            while not should_stop():
                self.poll_once()
                if on_tick is not None:
                    on_tick(self.stats)
        finally:
            self.producer.flush(10)
            self.consumer.close()
