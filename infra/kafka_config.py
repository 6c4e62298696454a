"""Configuration of a local KRaft node and the files rendered from it (pure, no I/O).

Each process plays both KRaft roles (broker + controller). Alone (``voters`` empty) it is the smallest real Kafka
there is; in a cluster (:mod:`infra.kafka_cluster`) every node lists all controllers as quorum voters, and the
internal topics are replicated like the pipeline's: replication factor ``min(3, cluster_size)`` and
``min.insync.replicas`` 2 from three nodes up, so an ``acks=all`` write survives the loss of any one node and a
write that only one replica holds is refused rather than acknowledged. ``group.initial.rebalance.delay.ms`` is 0
so consumer groups form immediately; the consumer-offsets topic gets 8 partitions instead of 50 so a cold start
on 2 cores is quick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infra.kafka_artifacts import DEFAULT_KAFKA_VERSION

__all__ = ["BrokerConfig", "render_server_properties", "render_log4j2_properties", "jvm_args", "replication_for",
           "min_insync_for"]


def replication_for(brokers: int) -> int:
    """Replicas per partition on a cluster of ``brokers`` nodes: 3 where there are 3 or more, else all of them."""
    return max(1, min(3, brokers))


def min_insync_for(replication: int) -> int:
    """``min.insync.replicas`` for a replication factor: 2 from 3 replicas up (one node may be down and writes go
    on; a write only one replica holds is refused), else 1 (a single broker must still take writes)."""
    return 2 if replication >= 3 else 1


@dataclass(frozen=True)
class BrokerConfig:
    data_dir: Path = field(metadata={"help": "broker home: KRaft log dirs, config, pid and log files"})
    port: int = field(default=9092, metadata={"help": "client (PLAINTEXT) port on host"})
    controller_port: int = field(default=9093, metadata={"help": "KRaft controller port on host"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface to listen on and advertise"})
    version: str = field(default=DEFAULT_KAFKA_VERSION, metadata={"help": "Apache Kafka version from Maven"})
    cache_dir: Path | None = field(default=None, metadata={"help": "jar cache (default ~/.cache/preserve/kafka-V)"})
    node_id: int = field(default=1, metadata={"help": "KRaft node id"})
    heap_mb: int = field(default=512, metadata={"help": "JVM max heap in MiB"})
    num_partitions: int = field(default=4, metadata={"help": "default partitions of auto-created topics"})
    quick_jit: bool = field(default=False, metadata={"help": "C1-only JIT + serial GC: starts ~2x faster on few "
                                                      "cores at lower peak throughput (test brokers)"})
    die_with_parent: bool = field(default=False, metadata={"help": "SIGTERM the broker when the starting process "
                                                           "dies (Linux; test brokers never outlive pytest)"})
    voters: str = field(default="", metadata={"help": "KRaft quorum voters 'id@host:port,...' of a cluster "
                                             "(empty: this node alone)"})
    cluster_size: int = field(default=1, metadata={"help": "brokers in the cluster (replication of internal topics)"})
    cluster_id: str | None = field(default=None, metadata={"help": "cluster id to format with (a cluster's nodes "
                                                           "share one; default: a new one)"})
    start_timeout_s: float = field(default=90.0, metadata={"help": "how long start() waits for metadata"})
    stop_timeout_s: float = field(default=30.0, metadata={"help": "SIGTERM grace before SIGKILL"})

    def __post_init__(self) -> None:
        for name in ("port", "controller_port"):
            val = getattr(self, name)
            if not 0 < val < 65536:
                raise ValueError(f"{name} must be in 1..65535, got {val}")
        if self.port == self.controller_port:
            raise ValueError("port and controller_port must differ")
        if self.heap_mb < 128:
            raise ValueError("heap_mb must be at least 128")
        if self.cluster_size < 1:
            raise ValueError("cluster_size must be >= 1")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def state_file(self) -> Path:
        """Ports and version of the last start, so ``down``/``status`` need no flags."""
        return self.data_dir / "broker.json"


def render_server_properties(cfg: BrokerConfig) -> str:
    rf = replication_for(cfg.cluster_size)
    isr = min_insync_for(rf)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(cfg.node_id),
        "controller.quorum.voters": cfg.voters or f"{cfg.node_id}@{cfg.host}:{cfg.controller_port}",
        "listeners": f"PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:{cfg.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{cfg.host}:{cfg.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cfg.log_dirs),
        "num.partitions": str(cfg.num_partitions),
        "offsets.topic.num.partitions": "8",
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(isr),
        # Topics created without an explicit factor (Faust's changelogs when asked for 0/-1) and every topic's
        # floor for acks=all writes.
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
        "group.initial.rebalance.delay.ms": "0",
        # Off: a producer racing topic creation would otherwise auto-create a topic with the default partition
        # count, and faust then refuses to start (PartitionsMismatch between a source topic and its changelog).
        # Topics are created explicitly (streams.topics.ensure_topics, faust's own declarations).
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "log.retention.check.interval.ms": "60000",
    }
    lines = ["# Rendered by infra/kafka_config.py; edits are overwritten on the next start."]
    lines += [f"{k}={v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def render_log4j2_properties(cfg: BrokerConfig) -> str:
    """Log to stdout (the launcher sends it to ``kafka.log``); INFO for Kafka, WARN for chatty internals."""
    return "\n".join([
        "status = warn",
        "appender.out.type = Console",
        "appender.out.name = STDOUT",
        "appender.out.layout.type = PatternLayout",
        "appender.out.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.out.ref = STDOUT",
        "logger.state.name = state.change.logger",
        "logger.state.level = WARN",
        "logger.kafkalog.name = org.apache.kafka.storage",
        "logger.kafkalog.level = WARN",
        "",
    ])


def jvm_args(cfg: BrokerConfig, libs: Path) -> list[str]:
    """JVM flags and class path (everything in ``libs``) shared by the broker and the storage tool."""
    gc = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if cfg.quick_jit else ["-XX:+UseG1GC",
                                                                                  "-XX:MaxGCPauseMillis=20"]
    return [
        f"-Xmx{cfg.heap_mb}m", f"-Xms{min(cfg.heap_mb, 256)}m", *gc, "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={cfg.log4j_file}", f"-Dkafka.logs.dir={cfg.data_dir}",
        "-cp", f"{libs}/*",
    ]
