"""Topic specs (pure) and idempotent creation on the real broker."""

from __future__ import annotations

import os

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from streams.records import RECORD_TYPES
from streams.settings import KafkaSettings
from streams.topics import DAY_MS, TopicMismatch, ensure_topics, topic_specs


def test_every_record_topic_has_an_explicit_spec() -> None:
    kafka = KafkaSettings(topic_prefix="x.", partitions=3)
    specs = {s.name: s for s in topic_specs(kafka)}
    assert set(specs) == set(RECORD_TYPES)
    assert all(s.physical == f"x.{s.name}" and s.partitions == 3 for s in specs.values())
    assert specs["routing-table"].cleanup_policy == "compact"
    assert specs["requests"].config() == {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"}


def test_retention_is_shortened_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Privacy (issue 21, finding 9): the requests topic may hold prompt text; an operator keeps it an hour."""
    from streams.settings import PreserveSettings

    monkeypatch.setenv("PRESERVE_KAFKA__RETENTION_MS", '{"requests": 3600000}')
    specs = {s.name: s for s in topic_specs(PreserveSettings().kafka)}
    assert specs["requests"].config()["retention.ms"] == "3600000"
    assert specs["completions"].retention_ms == 7 * DAY_MS  # the others keep their defaults
    with pytest.raises(KeyError, match="unknown topics"):
        topic_specs(KafkaSettings(retention_ms={"request": 1}))


def test_unknown_topic_is_rejected() -> None:
    with pytest.raises(KeyError, match="unknown topic"):
        topic_specs(KafkaSettings(), ["nope"])


@pytest.mark.integration
def test_ensure_topics_is_idempotent(kafka_broker: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=f"t{os.getpid()}.", partitions=2)
    first = ensure_topics(kafka)
    assert set(first.values()) == {"created"} and len(first) == len(RECORD_TYPES)
    second = ensure_topics(kafka)
    assert set(second.values()) == {"exists"}
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    md = admin.list_topics(timeout=10).topics
    assert len(md[kafka.topic("requests")].partitions) == 2
    res = ConfigResource(ResourceType.TOPIC, kafka.topic("routing-table"))
    cfg = admin.describe_configs([res])[res].result(10)
    assert cfg["cleanup.policy"].value == "compact"
    # A different partition count for an existing topic is an error, not a silent mismatch.
    with pytest.raises(TopicMismatch, match="has 2 partitions, spec says 3"):
        ensure_topics(kafka.model_copy(update={"partitions": 3}), topic_specs(kafka.model_copy(
            update={"partitions": 3}), ["requests"]))
