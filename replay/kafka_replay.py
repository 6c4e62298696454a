"""The Kafka edge of a replay: a trace's requests sent to the `requests` topic through confluent-kafka.

Shared by ``preserve replay``/``produce``, the demo and the soak (the pure pacing lives in ``replay.producer``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from replay.producer import ReplayCounts, replay_trace
from streams.settings import KafkaSettings, load_settings
from streams.transport.producer_helper import PRODUCER_DEFAULTS

__all__ = ["kafka_producer", "send_trace"]


def kafka_producer(kafka: KafkaSettings | None = None) -> tuple[Any, KafkaSettings]:
    """A confluent-kafka producer with the project's defaults (murmur2 partitioner, idempotence), and settings."""
    from confluent_kafka import Producer

    k = kafka or load_settings().kafka
    return Producer({**k.confluent_config(), **PRODUCER_DEFAULTS, "queue.buffering.max.messages": 1_000_000}), k


def send_trace(df: pd.DataFrame, speedup: float, epoch: float | None, with_prompts: bool, tqdm_cls: Any = None,
               kafka: KafkaSettings | None = None) -> ReplayCounts:
    """Replay ``df`` to the `requests` topic at ``speedup``; returns the counts (sent, delivered, failed)."""
    producer, kafka = kafka_producer(kafka)
    topic = kafka.topic("requests")
    failed = [0]

    def delivered(err: object, _msg: object) -> None:
        failed[0] += err is not None

    def produce_one(key: str, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.05)

    bar = tqdm_cls(total=len(df), unit="req", desc="replay") if tqdm_cls else None
    try:
        counts = replay_trace(df, produce_one, speedup if math.isfinite(speedup) else math.inf, epoch, with_prompts,
                              poll=lambda: producer.poll(0), progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    left = producer.flush(60)
    counts.failed = failed[0] + left
    counts.delivered = counts.sent - counts.failed
    return counts
