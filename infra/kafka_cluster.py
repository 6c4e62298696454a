"""A local multi-node KRaft cluster: N combined broker+controller JVMs on 127.0.0.1, one data dir each.

Why not one node: production Kafka replicates every partition, and what the control plane does when the leader of
its ``requests`` partition dies (a leader election, producers retrying, consumers re-fetching from the new leader)
can only be tested on real replicas. The nodes are :class:`infra.kafka_broker.KafkaBroker` processes from the same
Maven jars, all voters of one controller quorum and formatted with one cluster id. Node ``i`` (1-based) listens
on ``port + 2(i-1)`` with its controller on the port after it, so node 1 keeps 127.0.0.1:9092 and the default
bootstrap reaches the cluster. Layout of the cluster home::

    <home>/cluster.json     ports, size, heap, cluster id (so down/status need no flags)
    <home>/node-<i>/        that node's broker home (kraft-logs, server.properties, kafka.pid, kafka.log)

Every node is launched before any is waited on: none answers a client until a majority of controllers runs.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra.kafka_broker import BrokerError, BrokerStatus, KafkaBroker, new_cluster_id
from infra.kafka_config import BrokerConfig, min_insync_for, replication_for

__all__ = ["ClusterConfig", "KafkaCluster", "ClusterStatus", "NodeStatus", "QuorumState", "read_quorum_state",
           "node_ports", "is_cluster_home"]

CLUSTER_FILE = "cluster.json"


def node_ports(base_port: int, size: int) -> list[tuple[int, int]]:
    """(client port, controller port) of each node: consecutive pairs from ``base_port``."""
    return [(base_port + 2 * i, base_port + 2 * i + 1) for i in range(size)]


def is_cluster_home(path: Path) -> bool:
    return (path / CLUSTER_FILE).is_file()


@dataclass(frozen=True)
class ClusterConfig:
    home: Path = field(metadata={"help": "cluster home: cluster.json and one node-<i> directory per node"})
    size: int = field(default=3, metadata={"help": "number of broker+controller nodes"})
    base_port: int = field(default=9092, metadata={"help": "client port of node 1; node i uses base + 2(i-1) and "
                                                   "the port after it for its controller"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface to listen on and advertise"})
    heap_mb: int = field(default=320, metadata={"help": "JVM max heap per node in MiB (three share a small box)"})
    quick_jit: bool = field(default=False, metadata={"help": "C1-only JIT + serial GC per node (test clusters)"})
    die_with_parent: bool = field(default=False, metadata={"help": "SIGTERM the nodes when the starter dies"})
    cluster_id: str = field(default_factory=new_cluster_id, metadata={"help": "shared KRaft cluster id"})
    version: str | None = field(default=None, metadata={"help": "Apache Kafka version (default: the broker's)"})
    start_timeout_s: float = field(default=120.0, metadata={"help": "how long start() waits for all nodes"})

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("a cluster needs at least one node")
        if not (0 < self.base_port and self.base_port + 2 * self.size - 1 < 65536):
            raise ValueError(f"ports {self.base_port}..{self.base_port + 2 * self.size - 1} out of range")

    @property
    def replication(self) -> int:
        return replication_for(self.size)

    @property
    def min_insync(self) -> int:
        return min_insync_for(self.replication)

    @property
    def voters(self) -> str:
        return ",".join(f"{i + 1}@{self.host}:{c}" for i, (_, c) in enumerate(node_ports(self.base_port, self.size)))

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{p}" for p, _ in node_ports(self.base_port, self.size))

    def node_config(self, node_id: int) -> BrokerConfig:
        port, cport = node_ports(self.base_port, self.size)[node_id - 1]
        extra: dict[str, Any] = {"version": self.version} if self.version else {}
        return BrokerConfig(data_dir=self.home / f"node-{node_id}", port=port, controller_port=cport,
                            host=self.host, node_id=node_id, heap_mb=self.heap_mb, quick_jit=self.quick_jit,
                            die_with_parent=self.die_with_parent, voters=self.voters, cluster_size=self.size,
                            cluster_id=self.cluster_id, start_timeout_s=self.start_timeout_s, **extra)

    def to_json(self) -> str:
        return json.dumps({"size": self.size, "base_port": self.base_port, "host": self.host,
                           "heap_mb": self.heap_mb, "quick_jit": self.quick_jit,
                           "die_with_parent": self.die_with_parent, "cluster_id": self.cluster_id,
                           "version": self.version}, indent=1)

    @classmethod
    def load(cls, home: Path) -> ClusterConfig:
        """The cluster last started in ``home`` (raises FileNotFoundError if none was)."""
        saved = json.loads((home / CLUSTER_FILE).read_text())
        return cls(home=home, **saved)


@dataclass(frozen=True)
class QuorumState:
    """What one node last wrote to ``__cluster_metadata-0/quorum-state``: the leader it knows and its epoch."""

    node_id: int
    leader_id: int | None
    leader_epoch: int


def read_quorum_state(cfg: BrokerConfig) -> QuorumState | None:
    """The node's persisted KRaft election state, or None if it never wrote one (not formatted/started yet).

    Why a file: a client cannot ask who the active controller is (DescribeCluster names a random broker in
    KRaft), and the quorum tool lives in a jar the broker does not need. Each voter persists the leader and
    epoch it has voted for or learned before acting on them, so the highest epoch among running nodes names
    the active controller.
    """
    path = cfg.log_dirs / "__cluster_metadata-0" / "quorum-state"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    leader = raw.get("leaderId", -1)
    return QuorumState(node_id=cfg.node_id, leader_id=leader if leader is not None and leader >= 0 else None,
                       leader_epoch=int(raw.get("leaderEpoch", -1)))


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    status: BrokerStatus
    quorum: QuorumState | None


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[NodeStatus]
    active_controller: int | None
    leader_epoch: int
    under_replicated: list[tuple[str, int]]  # (topic, partition) with fewer in-sync replicas than replicas
    offline: list[tuple[str, int]]  # (topic, partition) without a leader
    replication: int
    min_insync: int

    @property
    def running(self) -> int:
        return sum(n.status.state == "running" for n in self.nodes)

    @property
    def state(self) -> str:
        """'running' (all nodes), 'degraded' (a majority runs: the quorum holds), 'down' (no majority)."""
        if self.running == len(self.nodes):
            return "running"
        return "degraded" if self.running > len(self.nodes) // 2 else "down"

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "active_controller": self.active_controller, "leader_epoch": self.leader_epoch,
                "replication_factor": self.replication, "min_insync_replicas": self.min_insync,
                "under_replicated_partitions": [f"{t}-{p}" for t, p in self.under_replicated],
                "offline_partitions": [f"{t}-{p}" for t, p in self.offline],
                "nodes": [{"node_id": n.node_id, "state": n.status.state, "pid": n.status.pid,
                           "bootstrap": n.status.bootstrap, "data_dir": str(n.status.data_dir)}
                          for n in self.nodes]}

    def describe(self) -> str:
        ctl = f"node {self.active_controller} (epoch {self.leader_epoch})" if self.active_controller else "none"
        lines = [f"kafka cluster {self.state}: {self.running}/{len(self.nodes)} nodes, active controller {ctl}, "
                 f"replication {self.replication}, min.insync.replicas {self.min_insync}"]
        for n in self.nodes:
            role = " (active controller)" if n.node_id == self.active_controller else ""
            lines.append(f"  node {n.node_id}: {n.status.state}{role}"
                         f"{f' pid {n.status.pid}' if n.status.pid else ''} at {n.status.bootstrap}")
        lines.append(f"  under-replicated partitions: {len(self.under_replicated)}"
                     + (f" ({', '.join(f'{t}-{p}' for t, p in self.under_replicated[:8])}"
                        f"{' ...' if len(self.under_replicated) > 8 else ''})" if self.under_replicated else ""))
        if self.offline:
            lines.append(f"  offline partitions (no leader): {len(self.offline)}")
        return "\n".join(lines)


class KafkaCluster:
    """Start/stop/status of a local cluster whose home is ``cfg.home``; per-node kill/start for fault tests."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = replace(cfg, home=cfg.home.expanduser().resolve())
        self.nodes = {i: KafkaBroker(self.cfg.node_config(i)) for i in range(1, self.cfg.size + 1)}

    @classmethod
    def from_home(cls, home: Path) -> KafkaCluster:
        return cls(ClusterConfig.load(home.expanduser().resolve()))

    @property
    def bootstrap(self) -> str:
        return self.cfg.bootstrap

    def _write_config(self) -> None:
        self.cfg.home.mkdir(parents=True, exist_ok=True)
        path = self.cfg.home / CLUSTER_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("size") != self.cfg.size or saved.get("cluster_id") != self.cfg.cluster_id:
                raise BrokerError(f"{self.cfg.home} holds a {saved.get('size')}-node cluster (id "
                                  f"{saved.get('cluster_id')}); use another --data-dir or remove it")
        path.write_text(self.cfg.to_json())

    # ---- start/stop ---------------------------------------------------------------------------------------
    def start(self) -> ClusterStatus:
        """Launch every node that is not running, then wait until each answers and every partition has a leader."""
        self._write_config()
        pids = {i: b.launch() for i, b in self.nodes.items()}
        with ThreadPoolExecutor(len(pids)) as pool:  # the waits overlap: each polls its own node
            list(pool.map(lambda i: self.nodes[i].wait_ready(pids[i]), pids))
        return self.status()

    def start_node(self, node_id: int) -> BrokerStatus:
        """(Re)start one node and wait until it answers and serves (the others must hold the quorum)."""
        return self.nodes[node_id].start()

    def kill_node(self, node_id: int) -> bool:
        """kill -9 one node (no controlled shutdown): a crash."""
        return self.nodes[node_id].kill()

    def stop(self) -> list[int]:
        """Stop every running node cleanly, all at once (a lone survivor could not elect a controller to shut
        down through, and would wait out its grace period). Returns the ids of the nodes that were running."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            stopped = dict(zip(self.nodes, pool.map(lambda b: b.stop(), self.nodes.values()), strict=True))
        return [i for i, was in stopped.items() if was]

    # ---- status -------------------------------------------------------------------------------------------
    def active_controller(self) -> tuple[int | None, int]:
        """(node id, epoch) of the quorum leader as the running nodes last recorded it; (None, -1) if unknown
        or if that node is not running (an election is due)."""
        states = [q for i, b in self.nodes.items() if b._our_pid() is not None  # noqa: SLF001
                  and (q := read_quorum_state(b.cfg)) is not None]
        if not states:
            return None, -1
        best = max(states, key=lambda q: q.leader_epoch)
        leader = best.leader_id
        if leader is None or leader not in self.nodes or self.nodes[leader]._our_pid() is None:  # noqa: SLF001
            return None, best.leader_epoch
        return leader, best.leader_epoch

    def partition_leaders(self, topic: str, timeout_s: float = 5.0) -> dict[int, int]:
        """{partition: leader node id} of ``topic`` from a metadata request (-1: no leader)."""
        md = self._admin(timeout_s).list_topics(topic, timeout=timeout_s)
        return {p: pm.leader for p, pm in md.topics[topic].partitions.items()}

    def _admin(self, timeout_s: float):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import AdminClient

        from infra.kafka_broker import _quiet

        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": _quiet,
                                "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000))}
        return AdminClient(conf)

    def replica_health(self, timeout_s: float = 3.0) -> tuple[list[tuple[str, int]], list[tuple[str, int]]] | None:
        """(under-replicated, offline) partitions of every topic, or None if no node answers."""
        try:
            md = self._admin(timeout_s).list_topics(timeout=timeout_s)
        except Exception:  # KafkaException: nobody answers
            return None
        under, offline = [], []
        for t, tm in sorted(md.topics.items()):
            for p, pm in sorted(tm.partitions.items()):
                if pm.leader < 0:
                    offline.append((t, p))
                if len(pm.isrs) < len(pm.replicas):
                    under.append((t, p))
        return under, offline

    def wait_fully_replicated(self, timeout_s: float = 60.0) -> None:
        """Wait until every partition has a leader and all its replicas in sync (after a node rejoined)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            health = self.replica_health()
            if health is not None and not health[0] and not health[1]:
                return
            time.sleep(0.25)
        raise BrokerError(f"partitions still under-replicated after {timeout_s:.0f} s: {self.replica_health()}")

    def status(self, probe_timeout_s: float = 3.0) -> ClusterStatus:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            sts = list(pool.map(lambda b: b.status(probe_timeout_s), self.nodes.values()))
        nodes = [NodeStatus(i, st, read_quorum_state(b.cfg)) for (i, b), st in zip(self.nodes.items(), sts,
                                                                                   strict=True)]
        ctl, epoch = self.active_controller()
        health = self.replica_health(probe_timeout_s) if any(s.state == "running" for s in sts) else None
        under, offline = health if health is not None else ([], [])
        return ClusterStatus(nodes=nodes, active_controller=ctl, leader_epoch=epoch, under_replicated=under,
                             offline=offline, replication=self.cfg.replication, min_insync=self.cfg.min_insync)
