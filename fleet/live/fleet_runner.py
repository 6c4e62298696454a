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

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from fleet.live.event_clock import ReplayClock, ServiceClocks, SpeedupCheck
from fleet.live.fleet_recovery import RECOVERY_TOPICS, FleetLog
from fleet.live.instance_manager import FleetManager
from streams.records import RECORD_TYPES, DeadLetter, EventRecord, RequestEvent, RouteDecision, ScaleCommand
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
        self.partition_of: dict[str, int] = {}  # service -> its partition (service-keyed topics share numbers)

    def owned(self, partitions: set[int]) -> list[str]:
        """Hand over the services whose partition is not in ``partitions`` (a rebalance moved it): the
        services dropped."""
        gone = [s for s, p in self.partition_of.items() if p not in partitions]
        for service in gone:
            self.manager.drop(service)
            self.clocks.forget(service)
            del self.partition_of[service]
        return gone

    def handle(self, msgs: Sequence[FleetInput], wall: float) -> list[EventRecord]:
        """Apply a batch at ``wall``; run every service to its clock; the records to publish."""
        bad: list[EventRecord] = []
        for m in msgs:
            self.stats.consumed += 1
            if m.name == ARRIVALS:
                arrival = _arrival(m.value)
                if arrival is None:
                    continue
                if m.partition is not None:
                    self.partition_of[arrival[1]] = m.partition
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
            if m.partition is not None:
                self.partition_of[rec.service] = m.partition
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


def read_fleet_log(kafka: KafkaSettings, partitions: list[int], timeout_s: float = 60.0) -> FleetLog:
    """The recovery topics' records of ``partitions`` (service-keyed topics share partition numbers; the dead
    letters, keyed by request id, are read whole), from the start to their current end."""
    consumer = Consumer({**kafka.confluent_config(), "group.id": "preserve-fleet-recovery",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    log = FleetLog()
    try:
        tps: list[TopicPartition] = []
        for name in RECOVERY_TOPICS:
            topic = kafka.topic(name)
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            parts = sorted(meta.partitions) if name == "dead-letter" else [p for p in partitions if p in meta.partitions]
            for p in parts:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    tps.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        if not tps:
            return log
        names = {kafka.topic(n): n for n in RECOVERY_TOPICS}
        left = {(tp.topic, tp.partition) for tp in tps}
        consumer.assign(tps)
        deadline = time.monotonic() + timeout_s
        while left and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001  (librdkafka constant)
                        left.discard((m.topic(), m.partition()))
                    continue
                try:
                    name = names[m.topic() or ""]
                    log.add(RECORD_TYPES[name].model_validate_json(m.value() or b""),
                            m.partition() if name != "dead-letter" else None)
                except ValueError:
                    continue  # a bad message was dead-lettered when it was first read
        log.unread = len(left)
    finally:
        consumer.close()
    return log


class FleetRunner:
    """:param manager: the event-time fleet. :param kafka: connection settings. :param clock: the settings of
    every service's replay clock (see :class:`FleetInputs`). :param group_id: consumer group of the instance
    managers. :param skew: the arrivals' event-time window (see :class:`FleetInputs`).
    :param session_timeout_s: how long after a crash its partitions move (the consumer group's session)."""

    def __init__(self, manager: FleetManager, kafka: KafkaSettings, clock: ReplayClock,
                 group_id: str = "preserve-fleet", skew: SkewSettings | None = None,
                 session_timeout_s: float = 10.0) -> None:
        self.manager = manager
        self.kafka = kafka
        self.clock = clock
        self.inputs = FleetInputs(manager, clock, skew)
        self.stats = self.inputs.stats
        self._next_speedup_warning = 0.0
        base = kafka.confluent_config()
        # A manager killed with -9 leaves the group when its session expires: its partitions (and services) move
        # to a live or restarted manager that long after (librdkafka's default is 45 s).
        self.consumer = Consumer({**base, "group.id": group_id, "auto.offset.reset": "earliest",
                                  "partition.assignment.strategy": "range", "enable.auto.commit": True,
                                  "session.timeout.ms": int(session_timeout_s * 1000),
                                  "heartbeat.interval.ms": max(100, int(session_timeout_s * 1000 / 10))})
        self.producer = Producer({**base, **PRODUCER_DEFAULTS})
        self._by_topic = {kafka.topic(name): name for name in (*_INPUTS, ARRIVALS)}
        self.consumer.subscribe(list(self._by_topic), on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        """A rebalance starts: everything this manager produced must be in the log before another manager
        reads it to take services over."""
        self.producer.flush(10)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions assigned (a start, a restart, a rebalance): hand over the services whose partition moved
        away, and take the newly owned ones over from the log (``fleet_recovery``), so instances, desired sizes
        and unfinished requests survive a restart, a crash or a rebalance."""
        parts = sorted({tp.partition for tp in partitions})
        gone = self.inputs.owned(set(parts))
        if gone:
            log.warning("fleet: services %s moved to another manager", gone)
        if not parts:
            return
        t0 = time.monotonic()
        flog = read_fleet_log(self.kafka, parts)
        if flog.unread:
            log.error("fleet: the log of partitions %s was not read to its end (%d partitions left): what it did "
                      "not show is not recovered", parts, flog.unread)
        self._publish(self.manager.restore(flog))
        for service, p in flog.partitions.items():
            if service in self.manager.fleets:
                self.inputs.partition_of.setdefault(service, p)
        self.producer.flush(10)
        if flog.records:
            log.warning("fleet: took over partitions %s from the log (%d records, %.1f s)", parts, flog.records,
                        time.monotonic() - t0)

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
