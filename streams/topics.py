"""Topic definitions of the pipeline and their idempotent creation through the Kafka admin API.

Every record topic is keyed by ``service``: the route, density, forecast and scale agents keep per-service state
and Faust co-partitions tables with their source topics, so all service-keyed topics share one partition count.
Retention and cleanup policy are set explicitly (never the broker's defaults): raw event streams keep a week,
aggregates a month, and the routing-table snapshots are compacted (only the latest per service matters).
``PRESERVE_KAFKA__RETENTION_MS`` (a JSON object, logical name -> ms) overrides a topic's retention when it is
created, e.g. ``{"requests": 3600000}`` keeps prompt text in Kafka for an hour (see the README's privacy notes);
unknown names are refused, so a typo never leaves a topic at its default.
The broker runs with ``auto.create.topics.enable=false``, so :func:`ensure_topics` must run before workers start.

Replication follows the cluster unless set (``PRESERVE_KAFKA__REPLICATION_FACTOR``, 0 = auto): ``min(3, brokers)``
replicas and ``min.insync.replicas`` 2 from three replicas up, so with ``acks=all`` producers a record the
pipeline acted on is on two nodes before anyone reads it, and a single broker (the development default) still works.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from infra.kafka_config import min_insync_for, replication_for
from streams.records import RECORD_TYPES
from streams.settings import KafkaSettings

__all__ = ["TopicSpec", "TopicMismatch", "topic_specs", "ensure_topics", "describe_topics", "DAY_MS",
           "resolve_replication", "cluster_replication"]

DAY_MS = 24 * 3600 * 1000


class TopicMismatch(RuntimeError):
    """An existing topic has a different partition count than its spec (co-partitioning would break)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str = field(metadata={"help": "logical name, the record class's `topic` (e.g. 'requests')"})
    physical: str = field(metadata={"help": "topic name in Kafka: settings.kafka.topic(name)"})
    partitions: int = field(metadata={"help": "partition count (shared by all service-keyed topics)"})
    replication_factor: int = field(default=0, metadata={"help": "replicas per partition (0: min(3, brokers))"})
    key: str = field(default="service", metadata={"help": "record field used as the message key"})
    retention_ms: int = field(default=7 * DAY_MS, metadata={"help": "retention.ms (-1: unlimited)"})
    cleanup_policy: str = field(default="delete", metadata={"help": "cleanup.policy: delete | compact"})

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replication_factor < 0:
            raise ValueError(f"{self.name}: partitions must be >= 1 and replication_factor >= 0 (0: auto)")
        if self.cleanup_policy not in ("delete", "compact", "compact,delete"):
            raise ValueError(f"{self.name}: unknown cleanup.policy {self.cleanup_policy!r}")

    def config(self) -> dict[str, str]:
        """Topic-level configs sent with CreateTopics (``min.insync.replicas`` once the factor is resolved)."""
        cfg = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}
        if self.replication_factor > 0:
            cfg["min.insync.replicas"] = str(min_insync_for(self.replication_factor))
        return cfg


def resolve_replication(wanted: int, brokers: int) -> int:
    """The replication factor to create topics with: ``wanted``, or ``min(3, brokers)`` where it is 0 (auto).
    Raises ValueError if more replicas are asked for than there are brokers (CreateTopics would refuse)."""
    rf = wanted or replication_for(brokers)
    if rf > brokers:
        raise ValueError(f"replication factor {rf} needs {rf} brokers; the cluster has {brokers}")
    return rf


def cluster_replication(kafka: KafkaSettings, timeout_s: float = 10.0) -> int:
    """The replication factor for ``kafka``'s cluster (one metadata request counts its brokers)."""
    return resolve_replication(kafka.replication_factor, len(_admin(kafka).list_topics(timeout=timeout_s).brokers))


# (retention in days, cleanup policy, key field) per logical topic; anything else gets the default row.
_POLICY: dict[str, tuple[int, str, str]] = {
    "requests": (7, "delete", "service"),
    "predicted-requests": (7, "delete", "service"),
    "routes": (7, "delete", "service"),
    "completions": (7, "delete", "service"),
    "instance-events": (7, "delete", "service"),
    "routing-table": (7, "compact", "service"),
    "token-density": (30, "delete", "service"),
    "forecasts": (30, "delete", "service"),
    "scale-commands": (30, "delete", "service"),
    # Dead letters are keyed by the original message key; kept a month so an operator can inspect them.
    "dead-letter": (30, "delete", "key"),
}


def topic_specs(kafka: KafkaSettings, names: Iterable[str] | None = None) -> list[TopicSpec]:
    """The spec of each record topic (all of :data:`RECORD_TYPES` by default), named through ``kafka``."""
    unknown = sorted(set(kafka.retention_ms) - set(RECORD_TYPES))
    if unknown:
        raise KeyError(f"PRESERVE_KAFKA__RETENTION_MS names unknown topics {unknown}; known: {', '.join(RECORD_TYPES)}")
    out = []
    for name in names if names is not None else RECORD_TYPES:
        if name not in RECORD_TYPES:
            raise KeyError(f"unknown topic {name!r}; known: {', '.join(RECORD_TYPES)}")
        days, cleanup, key = _POLICY.get(name, (7, "delete", "service"))
        out.append(TopicSpec(name=name, physical=kafka.topic(name), partitions=kafka.partitions,
                             replication_factor=kafka.replication_factor, key=key,
                             retention_ms=kafka.retention_ms.get(name, days * DAY_MS), cleanup_policy=cleanup))
    return out


def _admin(kafka: KafkaSettings):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka.confluent_config())


def ensure_topics(kafka: KafkaSettings, specs: Iterable[TopicSpec] | None = None,
                  timeout_s: float = 30.0) -> dict[str, str]:
    """Create missing topics; leave existing ones. Returns ``{physical: "created" | "exists"}``.

    Raises :class:`TopicMismatch` if an existing topic's partition count differs from its spec, and
    ``RuntimeError`` if creation fails or topics don't become visible within ``timeout_s``.
    """
    from confluent_kafka.admin import NewTopic

    specs = list(specs) if specs is not None else topic_specs(kafka)
    admin = _admin(kafka)
    md = admin.list_topics(timeout=timeout_s)
    existing = md.topics
    specs = [replace(s, replication_factor=resolve_replication(s.replication_factor, len(md.brokers))) for s in specs]
    result: dict[str, str] = {}
    new = []
    for s in specs:
        if s.physical in existing:
            have = len(existing[s.physical].partitions)
            if have != s.partitions:
                raise TopicMismatch(f"topic {s.physical} has {have} partitions, spec says {s.partitions}: "
                                    f"delete it or set PRESERVE_KAFKA__PARTITIONS={have}")
            result[s.physical] = "exists"
        else:
            new.append(NewTopic(s.physical, s.partitions, s.replication_factor, config=s.config()))
    futures = admin.create_topics(new, request_timeout=timeout_s) if new else {}
    for topic, fut in futures.items():
        try:
            fut.result(timeout_s)
            result[topic] = "created"
        except Exception as e:  # KafkaException; a concurrent creator may have won the race
            if "TOPIC_ALREADY_EXISTS" not in str(e).upper().replace(" ", "_"):
                raise RuntimeError(f"could not create topic {topic}: {e}") from e
            result[topic] = "exists"
    _wait_visible(admin, {s.physical for s in specs}, timeout_s)
    return result


def _wait_visible(admin, want: set[str], timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """CreateTopics returns before the topic is in the metadata cache with a leader per partition; producers
    and consumers need both."""
    deadline = time.monotonic() + timeout_s
    while True:
        md = admin.list_topics(timeout=timeout_s).topics
        if all(t in md and md[t].error is None and md[t].partitions
               and all(pm.leader >= 0 for pm in md[t].partitions.values()) for t in want):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics not visible after {timeout_s:.0f} s: {sorted(want - set(md))}")
        time.sleep(0.1)


def _watermark_span(consumer, tp, timeout_s: float, attempts: int = 20) -> int:  # type: ignore[no-untyped-def]
    """high - low watermark; retried while a just-created partition has no leader yet."""
    from confluent_kafka import KafkaException

    for attempt in range(attempts):
        try:
            lo, hi = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            return int(hi - lo)
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    return 0


def describe_topics(kafka: KafkaSettings, prefix_only: bool = True,
                    timeout_s: float = 15.0) -> list[dict[str, object]]:
    """Name, partitions, message count (high - low watermark), retention and cleanup of each topic."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = _admin(kafka)
    md = admin.list_topics(timeout=timeout_s).topics
    names = sorted(t for t in md if not t.startswith("__") and (not prefix_only or t.startswith(kafka.topic_prefix)))
    if not names:
        return []
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in names]
    configs = {r.name: fut.result(timeout_s) for r, fut in admin.describe_configs(resources).items()}
    consumer = Consumer({**kafka.confluent_config(), "group.id": "preserve-topics-describe"})
    rows: list[dict[str, object]] = []
    try:
        for t in names:
            msgs = sum(_watermark_span(consumer, TopicPartition(t, p), timeout_s) for p in md[t].partitions)
            cfg = configs[t]
            parts = md[t].partitions.values()
            rows.append({"topic": t, "partitions": len(md[t].partitions), "messages": msgs,
                         "retention_ms": int(cfg["retention.ms"].value), "cleanup": cfg["cleanup.policy"].value,
                         "replication": min((len(pm.replicas) for pm in parts), default=0),
                         "min_insync": int(cfg["min.insync.replicas"].value),
                         "under_replicated": sum(len(pm.isrs) < len(pm.replicas) for pm in parts)})
    finally:
        consumer.close()
    return rows
