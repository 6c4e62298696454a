"""BatchPublisher on the real broker: a batch's future completes only once every record is stored, records land
on the partitions Faust's producer would pick, and a record the broker refuses fails its batch."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import AdminClient, NewTopic

from fleet.live.pipeline_procs import read_topic
from streams.records import DeadLetter, EventRecord, RouteDecision, RoutingTable
from streams.settings import KafkaSettings
from streams.topics import ensure_topics, topic_specs
from streams.transport.batch_publisher import BatchPublisher, PublishError, record_key

pytestmark = pytest.mark.integration


def _route(i: int, service: str) -> RouteDecision:
    return RouteDecision(ts=1.0 + i, request_id=f"r{i}", service=service, instance_id="i0", prompt_tokens=10,
                         predicted_tokens=5.0, policy="test")


def _kafka(bootstrap: str, name: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bp{os.getpid()}{name}.", partitions=4)


def test_record_key_is_the_service_or_the_dead_letter_key() -> None:
    assert record_key(_route(0, "svc-a")) == b"svc-a"
    assert record_key(DeadLetter(ts=1.0, source_topic="requests", reason="x", payload="", key="k")) == b"k"
    assert record_key(DeadLetter(ts=1.0, source_topic="requests", reason="x", payload="")) is None


def test_batch_future_completes_when_stored_on_faust_partitions(kafka_broker: str) -> None:
    kafka = _kafka(kafka_broker, "ok")
    ensure_topics(kafka, topic_specs(kafka, ["routes"]))
    services = ["svc-a", "svc-b", "svc-c", "svc-d", "svc-e"]
    recs: list[EventRecord] = [_route(i, services[i % len(services)]) for i in range(200)]

    async def go() -> None:
        pub = BatchPublisher(kafka)
        try:
            stored = await pub.publish(recs)
            await asyncio.wait_for(stored, 30)
            empty = await pub.publish([])
            assert empty.done() and empty.exception() is None
        finally:
            assert pub.close() == 0

    asyncio.run(go())
    values = read_topic(kafka, "routes")
    assert sorted(RouteDecision.model_validate_json(v).request_id for v in values) == sorted(
        f"r{i}" for i in range(200))
    # every record sits on the partition aiokafka (Faust's producer) would have chosen for its key
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka_broker, "group.id": f"bp-check-{os.getpid()}",
                  "enable.auto.commit": False})
    try:
        topic = kafka.topic("routes")
        c.assign([TopicPartition(topic, p, 0) for p in range(4)])
        partitioner, seen = DefaultPartitioner(), 0
        while seen < 200:
            for m in c.consume(500, timeout=5):
                assert not m.error()
                assert m.partition() == partitioner(m.key(), [0, 1, 2, 3], [0, 1, 2, 3])
                seen += 1
    finally:
        c.close()


def test_a_refused_record_fails_its_batch(kafka_broker: str) -> None:
    kafka = _kafka(kafka_broker, "big")
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    topic = kafka.topic("routing-table")
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "2000"})])[topic].result(30)
    big = RoutingTable(ts=1.0, service="svc-a", instances=[{"instance_id": f"i{i}", "running": i} for i in range(200)])
    assert len(big.to_json()) > 2000

    async def go() -> None:
        pub = BatchPublisher(kafka)
        try:
            stored = await pub.publish([big])
            with pytest.raises(PublishError, match="routing-table"):
                await asyncio.wait_for(stored, 30)
        finally:
            pub.close()

    asyncio.run(go())
