"""The local 3-node cluster: rendered configuration (pure), then a real cluster: status through the CLI, topics
replicated 3 times with min.insync.replicas 2, writes refused below the in-sync floor, and a kill -9 of the
active controller answered by a new election and a clean rejoin."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from infra.kafka_cluster import ClusterConfig, KafkaCluster, node_ports, read_quorum_state
from infra.kafka_config import render_server_properties
from preserve_cli.infra_cmd import infra
from preserve_cli.topics_cmd import topics
from streams.settings import KafkaSettings, load_settings
from streams.topics import TopicSpec, describe_topics, ensure_topics, resolve_replication, topic_specs
from streams.transport.producer_helper import PRODUCER_DEFAULTS


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_cluster_nodes_share_the_quorum_and_replicate_internal_topics(tmp_path: Path) -> None:
    cfg = ClusterConfig(home=tmp_path, size=3, base_port=19092, cluster_id="abc")
    assert node_ports(19092, 3) == [(19092, 19093), (19094, 19095), (19096, 19097)]
    assert cfg.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    node2 = cfg.node_config(2)
    assert (node2.port, node2.controller_port, node2.node_id, node2.cluster_id) == (19094, 19095, 2, "abc")
    assert node2.data_dir == tmp_path / "node-2"
    p = _props(render_server_properties(node2))
    assert p["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert p["node.id"] == "2"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert p["offsets.topic.replication.factor"] == "3" and p["default.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2" and p["transaction.state.log.min.isr"] == "2"


def test_a_single_broker_keeps_replication_one(tmp_path: Path) -> None:
    p = _props(render_server_properties(ClusterConfig(home=tmp_path, size=1).node_config(1)))
    assert p["offsets.topic.replication.factor"] == "1" and p["min.insync.replicas"] == "1"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093"


@pytest.mark.parametrize(("wanted", "brokers", "rf"), [(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 5, 3), (2, 3, 2)])
def test_replication_follows_the_cluster_unless_set(wanted: int, brokers: int, rf: int) -> None:
    assert resolve_replication(wanted, brokers) == rf


def test_more_replicas_than_brokers_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 3 brokers"):
        resolve_replication(3, 1)


def test_topic_specs_carry_min_insync_once_resolved() -> None:
    spec = topic_specs(KafkaSettings(), ["requests"])[0]
    assert spec.replication_factor == 0 and "min.insync.replicas" not in spec.config()
    three = TopicSpec(name="requests", physical="p.requests", partitions=4, replication_factor=3)
    assert three.config()["min.insync.replicas"] == "2"


def test_producers_wait_for_every_in_sync_replica() -> None:
    assert PRODUCER_DEFAULTS["acks"] == "all" and PRODUCER_DEFAULTS["enable.idempotence"] is True


def test_quorum_state_is_read_from_the_node_files(tmp_path: Path) -> None:
    node = ClusterConfig(home=tmp_path, size=3).node_config(2)
    assert read_quorum_state(node) is None
    (node.log_dirs / "__cluster_metadata-0").mkdir(parents=True)
    (node.log_dirs / "__cluster_metadata-0" / "quorum-state").write_text(json.dumps(
        {"clusterId": "", "leaderId": 3, "leaderEpoch": 7, "votedId": 3, "appliedOffset": 0}))
    q = read_quorum_state(node)
    assert q is not None and (q.node_id, q.leader_id, q.leader_epoch) == (2, 3, 7)


# ---- a real cluster ------------------------------------------------------------------------------------------
@pytest.fixture()
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    p = f"cl{os.getpid()}x{time.time_ns() % 10**6}."
    monkeypatch.setenv("PRESERVE_KAFKA__TOPIC_PREFIX", p)
    load_settings.cache_clear()
    yield p
    load_settings.cache_clear()


@pytest.mark.cluster
@pytest.mark.integration
def test_status_names_each_node_and_the_active_controller(kafka_cluster: KafkaCluster) -> None:
    out = CliRunner().invoke(infra, ["status", "--json", "--data-dir", str(kafka_cluster.cfg.home)])
    assert out.exit_code == 0, out.output
    st = json.loads(out.output)
    assert st["state"] == "running" and [n["node_id"] for n in st["nodes"]] == [1, 2, 3]
    assert all(n["state"] == "running" for n in st["nodes"])
    assert st["active_controller"] in (1, 2, 3) and st["replication_factor"] == 3
    assert st["under_replicated_partitions"] == []
    text = CliRunner().invoke(infra, ["status", "--data-dir", str(kafka_cluster.cfg.home)])
    assert "(active controller)" in text.output and "under-replicated partitions: 0" in text.output


@pytest.mark.cluster
@pytest.mark.integration
def test_topics_are_replicated_three_times_with_two_in_sync(kafka_cluster: KafkaCluster, prefix: str) -> None:
    out = CliRunner().invoke(topics, ["create", "--bootstrap", kafka_cluster.bootstrap])
    assert out.exit_code == 0, out.output
    assert "replication=3" in out.output
    kafka = KafkaSettings(bootstrap_servers=kafka_cluster.bootstrap, topic_prefix=prefix)
    rows = describe_topics(kafka)
    assert rows and all(r["replication"] == 3 and r["min_insync"] == 2 for r in rows), rows


@pytest.mark.cluster
@pytest.mark.integration
def test_acks_all_writes_stop_below_min_insync_and_resume(kafka_cluster: KafkaCluster) -> None:
    """With two of three nodes down a partition has one in-sync replica: an acks=all write must be refused
    (NOT_ENOUGH_REPLICAS) rather than acknowledged by a lone copy; with a node back, writes go through."""
    kafka = KafkaSettings(bootstrap_servers=kafka_cluster.bootstrap, topic_prefix=f"isr{time.time_ns() % 10**8}.")
    spec = topic_specs(kafka, ["requests"])
    ensure_topics(kafka, spec)
    topic = spec[0].physical
    leader = kafka_cluster.partition_leaders(topic)[0]
    others = [i for i in kafka_cluster.nodes if i != leader]
    try:
        kafka_cluster.nodes[others[0]].stop()  # controlled: the ISR shrinks at once, no session timeout
        errors: list[str] = []
        p = Producer({**kafka.confluent_config(), **PRODUCER_DEFAULTS, "message.timeout.ms": 8000})

        def cb(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))
        kafka_cluster.nodes[others[1]].stop()
        p.produce(topic, key=b"svc", value=b"{}", partition=0, on_delivery=cb)
        p.flush(15)
        assert errors and any("NOT_ENOUGH_REPLICAS" in e or "timed out" in e.lower() for e in errors), errors
    finally:
        for i in others:
            kafka_cluster.start_node(i)
        kafka_cluster.wait_fully_replicated(90.0)
    ok = Producer({**kafka.confluent_config(), **PRODUCER_DEFAULTS})
    ok.produce(topic, key=b"svc", value=b"{}", partition=0)
    assert ok.flush(30) == 0


@pytest.mark.cluster
@pytest.mark.integration
def test_kill9_of_the_active_controller_elects_another_and_it_rejoins(kafka_cluster: KafkaCluster) -> None:
    ctl, epoch = kafka_cluster.active_controller()
    assert ctl is not None
    t0 = time.monotonic()
    assert kafka_cluster.kill_node(ctl)
    new = None
    while time.monotonic() - t0 < 30:
        new, new_epoch = kafka_cluster.active_controller()
        if new is not None:
            break
        time.sleep(0.2)
    elected_s = time.monotonic() - t0
    try:
        assert new is not None and new != ctl and new_epoch > epoch, (new, new_epoch, epoch)
        assert kafka_cluster.status().state == "degraded"
        print(f"\ncontroller {ctl} killed: node {new} active after {elected_s:.1f} s")
    finally:
        kafka_cluster.start_node(ctl)
        kafka_cluster.wait_fully_replicated(90.0)
    assert kafka_cluster.status().state == "running"


def test_up_refuses_a_cluster_in_a_single_brokers_home(tmp_path: Path) -> None:
    (tmp_path / "broker.json").write_text("{}")
    out = CliRunner().invoke(infra, ["up", "--brokers", "3", "--data-dir", str(tmp_path)])
    assert out.exit_code != 0 and "holds a single broker" in out.output


def test_up_refuses_another_size_in_a_clusters_home(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(ClusterConfig(home=tmp_path, size=3).to_json())
    out = CliRunner().invoke(infra, ["up", "--brokers", "5", "--data-dir", str(tmp_path)])
    assert out.exit_code != 0 and "holds a 3-node cluster, not 5" in out.output
    out = CliRunner().invoke(infra, ["up", "--brokers", "3", "--controller-port", "9999", "--data-dir", str(tmp_path)])
    assert out.exit_code != 0 and "controller ports follow from --port" in out.output


def test_status_of_a_stopped_cluster_says_down(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(ClusterConfig(home=tmp_path, size=3, base_port=19192).to_json())
    out = CliRunner().invoke(infra, ["status", "--json", "--data-dir", str(tmp_path)])
    st = json.loads(out.output)
    assert out.exit_code == 1 and st["state"] == "down" and [n["state"] for n in st["nodes"]] == ["stopped"] * 3
