"""The local broker: configuration rendering (pure) and a real start / stop / restart with persistence."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.java_runtime import parse_java_version
from infra.kafka_artifacts import render_pom
from infra.kafka_broker import KafkaBroker, PortInUse
from infra.kafka_config import BrokerConfig, render_server_properties


@pytest.mark.parametrize(("text", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "21" 2023-09-19', 21),
    ("garbage", None),
])
def test_parse_java_version(text: str, major: int | None) -> None:
    assert parse_java_version(text) == major


def test_server_properties_are_kraft_combined_on_given_ports(tmp_path: Path) -> None:
    props = render_server_properties(BrokerConfig(data_dir=tmp_path, port=12345, controller_port=12346))
    lines = dict(line.split("=", 1) for line in props.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["process.roles"] == "broker,controller"
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:12345,CONTROLLER://127.0.0.1:12346"
    assert lines["controller.quorum.voters"] == "1@127.0.0.1:12346"
    assert lines["log.dirs"] == str(tmp_path / "kraft-logs")
    assert lines["auto.create.topics.enable"] == "false"


def test_config_rejects_bad_ports(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differ"):
        BrokerConfig(data_dir=tmp_path, port=9092, controller_port=9092)
    with pytest.raises(ValueError, match="1..65535"):
        BrokerConfig(data_dir=tmp_path, port=70000)


def test_pom_depends_on_broker_and_log_binding() -> None:
    pom = render_pom("4.1.1")
    assert "<artifactId>kafka_2.13</artifactId><version>4.1.1</version>" in pom
    assert "log4j-slf4j-impl" in pom


def _produce(bootstrap: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, value=f"m{i}".encode(), key=str(i).encode())
    assert p.flush(30) == 0


def _read_all(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0) -> list[str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[str] = []
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    want = sum(ends.values())
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg.value().decode())
    c.close()
    return got


@pytest.mark.integration
def test_restart_keeps_topics_and_messages(kafka_broker_handle: KafkaBroker) -> None:
    """Stops and restarts the session broker (same ports and data dir): topics and messages survive."""
    broker = kafka_broker_handle
    st = broker.status()
    assert st.state == "running" and st.pid is not None
    topic = f"persist-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    _produce(broker.bootstrap, topic, 50)
    assert broker.start().pid == st.pid  # start() on a running broker is a no-op
    try:
        assert broker.stop() is True
        assert broker.status().state == "stopped"
        assert not (broker.cfg.pid_file).exists()
        assert broker.stop() is False
        # A new handle on the same data dir: ports and JVM options come back from the state file.
        again = KafkaBroker.from_data_dir(broker.cfg.data_dir)
        assert again.cfg == broker.cfg
        assert again.start().state == "running"
    finally:
        broker.start()  # the rest of the session needs it (no-op if already running)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert topic in admin.list_topics(timeout=10).topics
    assert sorted(_read_all(broker.bootstrap, topic, 2)) == sorted(f"m{i}" for i in range(50))


@pytest.mark.integration
def test_port_taken_gives_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        broker = KafkaBroker(BrokerConfig(data_dir=tmp_path, port=port, controller_port=port + 1 if port < 65535
                                          else port - 1))
        with pytest.raises(PortInUse, match=f"127.0.0.1:{port} is already in use"):
            broker.start()
    assert broker.status().state == "stopped"


def test_missing_java_or_maven_gives_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from infra.java_runtime import ToolMissing, find_java, find_maven
    from preserve_cli.infra_cmd import infra

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: neither java nor mvn on PATH
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ToolMissing, match="Java 17"):
        find_java()
    with pytest.raises(ToolMissing, match="Maven"):
        find_maven()
    out = CliRunner().invoke(infra, ["up", "--port", "1", "--data-dir", str(tmp_path / "k")])
    assert out.exit_code != 0 and "java not found" in out.output


def test_old_java_is_rejected(tmp_path: Path) -> None:
    from infra.java_runtime import ToolMissing, java_major_version

    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\necho \'java version "1.8.0_392"\' >&2\n')
    fake.chmod(0o755)
    with pytest.raises(ToolMissing, match="Java 8"):
        java_major_version(str(fake))


@pytest.mark.integration
def test_test_broker_dies_with_its_parent(tmp_path: Path) -> None:
    """A killed test session must not leave a JVM behind on a shared machine."""
    import os
    import signal
    import subprocess
    import sys

    from infra.process_control import pid_alive, read_pid
    from streams.settings import project_root

    script = ("import sys, time; from pathlib import Path; from tests.fixtures.kafka import start_test_broker; "
              "start_test_broker(Path(sys.argv[1])); print('up', flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "k")], cwd=project_root(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "up"
        pid = read_pid(tmp_path / "k" / "kafka.pid")
        assert pid is not None and pid_alive(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(pid)
    finally:
        if parent.poll() is None:
            parent.kill()
        KafkaBroker.from_data_dir(tmp_path / "k").stop()
