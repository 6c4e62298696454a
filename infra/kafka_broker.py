"""A real single-node Apache Kafka (KRaft, combined broker + controller) run from Maven Central jars.

``KafkaBroker(cfg).start()`` resolves the jars once (see :mod:`infra.kafka_artifacts`), formats the storage on
first start, launches ``java kafka.Kafka server.properties`` detached (pid file + log file in the data dir) and
returns when the broker answers a metadata request *with our cluster id* (so a foreign broker on the same port
is never mistaken for ours). The data directory persists: restarting keeps topics and messages.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from infra.java_runtime import find_java, java_major_version
from infra.kafka_artifacts import jars_cached, resolve_kafka_jars
from infra.kafka_config import BrokerConfig, jvm_args, render_log4j2_properties, render_server_properties
from infra.process_control import (
    PortInUse,
    die_with_parent,
    pid_alive,
    pid_cmdline,
    port_free,
    read_pid,
    terminate,
)

__all__ = ["KafkaBroker", "BrokerStatus", "BrokerError", "PortInUse", "BrokerConfig"]

log = logging.getLogger(__name__)
_quiet = logging.getLogger("preserve.infra.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class BrokerError(RuntimeError):
    """The broker failed to format, start or answer; the message carries the tail of its log."""


@dataclass(frozen=True)
class BrokerStatus:
    state: str  # "running" | "unresponsive" | "stopped"
    pid: int | None
    bootstrap: str
    version: str
    data_dir: Path
    topics: int | None = None

    def describe(self) -> str:
        extra = f", {self.topics} topics" if self.topics is not None else ""
        pid = f" pid {self.pid}" if self.pid else ""
        return f"kafka {self.version} {self.state}{pid} at {self.bootstrap}{extra} (data {self.data_dir})"


def new_cluster_id() -> str:
    """Kafka's cluster-id format: a random UUID as 22 characters of URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def read_cluster_id(log_dirs: Path) -> str | None:
    meta = log_dirs / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1].strip()
    return None


class KafkaBroker:
    """Start/stop/status of one local broker whose home is ``cfg.data_dir``.

    :param cfg: ports, version, data and cache directories (see :class:`BrokerConfig`).
    """

    def __init__(self, cfg: BrokerConfig) -> None:
        # Absolute: the JVM runs with cwd=data_dir, and the pid check matches the path in its command line.
        self.cfg = replace(cfg, data_dir=cfg.data_dir.expanduser().resolve())

    @classmethod
    def from_data_dir(cls, data_dir: Path, **overrides: object) -> KafkaBroker:
        """The broker last started in ``data_dir`` (ports/version from its state file), with overrides."""
        cfg = BrokerConfig(data_dir=data_dir)
        state = cfg.state_file
        if state.is_file():
            saved = json.loads(state.read_text())
            cfg = replace(cfg, port=saved["port"], controller_port=saved["controller_port"],
                          host=saved.get("host", cfg.host), version=saved.get("version", cfg.version),
                          heap_mb=saved.get("heap_mb", cfg.heap_mb), quick_jit=saved.get("quick_jit", cfg.quick_jit),
                          die_with_parent=saved.get("die_with_parent", cfg.die_with_parent),
                          node_id=saved.get("node_id", cfg.node_id), voters=saved.get("voters", cfg.voters),
                          cluster_size=saved.get("cluster_size", cfg.cluster_size))
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(replace(cfg, **given) if given else cfg)  # type: ignore[arg-type]

    @property
    def bootstrap(self) -> str:
        return self.cfg.bootstrap

    # ---- status -------------------------------------------------------------------------------------------
    def _our_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is our broker (guards against pid reuse)."""
        pid = read_pid(self.cfg.pid_file)
        if pid is None or not pid_alive(pid):
            return None
        cmd = pid_cmdline(pid)
        if cmd and str(self.cfg.properties_file) not in cmd:
            return None
        return pid

    def _admin(self, timeout_s: float):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import AdminClient

        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": _quiet,
                                "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000))}
        return AdminClient(conf)

    def _metadata(self, timeout_s: float) -> tuple[str | None, int] | None:
        """(cluster id, topic count) from a metadata request, or None if nobody answers in time."""
        try:
            md = self._admin(timeout_s).list_topics(timeout=timeout_s)
        except Exception:  # KafkaException on timeout/transport errors: "not answering" is the answer
            return None
        return md.cluster_id, len(md.topics)

    def _partitions_serving(self, timeout_s: float) -> bool:
        """Every partition (internal ones included) answers a ListOffsets request.

        After a restart the broker answers metadata before it has become leader of the partitions it loads
        from disk; until then clients get NOT_LEADER_FOR_PARTITION, which some calls (watermarks) don't retry.
        """
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        admin = self._admin(timeout_s)
        try:
            md = admin.list_topics(timeout=timeout_s)
            tps = {TopicPartition(t, p): OffsetSpec.latest() for t, tm in md.topics.items() for p in tm.partitions}
            if any(pm.leader < 0 for tm in md.topics.values() for pm in tm.partitions.values()):
                return False
            if not tps:
                return True
            for fut in admin.list_offsets(tps, request_timeout=timeout_s).values():
                fut.result(timeout_s)
        except Exception:  # NOT_LEADER / LEADER_NOT_AVAILABLE / timeouts: not ready yet
            return False
        return True

    def status(self, probe_timeout_s: float = 3.0) -> BrokerStatus:
        pid = self._our_pid()
        base = dict(pid=pid, bootstrap=self.bootstrap, version=self.cfg.version, data_dir=self.cfg.data_dir)
        if pid is None:
            return BrokerStatus(state="stopped", **base)  # type: ignore[arg-type]
        md = self._metadata(probe_timeout_s)
        if md is None or md[0] != read_cluster_id(self.cfg.log_dirs):
            return BrokerStatus(state="unresponsive", **base)  # type: ignore[arg-type]
        return BrokerStatus(state="running", topics=md[1], **base)  # type: ignore[arg-type]

    def is_running(self) -> bool:
        return self.status().state == "running"

    # ---- start --------------------------------------------------------------------------------------------
    def _write_config(self) -> None:
        self.cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.cfg.properties_file.write_text(render_server_properties(self.cfg))
        self.cfg.log4j_file.write_text(render_log4j2_properties(self.cfg))
        self.cfg.state_file.write_text(json.dumps({
            "port": self.cfg.port, "controller_port": self.cfg.controller_port, "host": self.cfg.host,
            "version": self.cfg.version, "heap_mb": self.cfg.heap_mb, "quick_jit": self.cfg.quick_jit,
            "die_with_parent": self.cfg.die_with_parent, "node_id": self.cfg.node_id, "voters": self.cfg.voters,
            "cluster_size": self.cfg.cluster_size}, indent=1))

    def _format_storage(self, java: str, libs: Path) -> None:
        """``StorageTool format`` once per data dir; KRaft refuses to start on unformatted log dirs."""
        if read_cluster_id(self.cfg.log_dirs) is not None:
            return
        cmd = [java, *jvm_args(self.cfg, libs), "kafka.tools.StorageTool", "format",
               "-t", self.cfg.cluster_id or new_cluster_id(), "-c", str(self.cfg.properties_file), "--ignore-formatted"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise BrokerError(f"formatting {self.cfg.log_dirs} failed:\n{(out.stdout + out.stderr)[-2000:]}")

    def _check_ports(self) -> None:
        for name, port in (("port", self.cfg.port), ("controller port", self.cfg.controller_port)):
            if not port_free(self.cfg.host, port):
                raise PortInUse(f"{name} {self.cfg.host}:{port} is already in use by another process: "
                                f"stop it or choose another (--port / --controller-port)")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.cfg.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> BrokerStatus:
        """Start the broker (no-op if ours already runs); return once it answers metadata requests with our
        cluster id and every existing partition (internal ones included) is served by a leader."""
        if self._our_pid() is not None:
            st = self.status()
            if st.state == "running":
                return st
            return self.wait_ready(read_pid(self.cfg.pid_file))
        return self.wait_ready(self.launch())

    def launch(self) -> int:
        """Format (first time) and start the JVM detached, without waiting; returns its pid. A cluster launches
        all its nodes before waiting on any: none answers until a majority of the controllers runs."""
        pid = self._our_pid()
        if pid is not None:
            return pid
        java = find_java()
        java_major_version(java)
        self._check_ports()
        if not jars_cached(self.cfg.version, self.cfg.cache_dir):
            log.warning("resolving the Kafka %s jars with Maven (once; ~45 MB)", self.cfg.version)
        libs = resolve_kafka_jars(self.cfg.version, self.cfg.cache_dir)
        self._write_config()
        self._format_storage(java, libs)
        cmd = [java, *jvm_args(self.cfg, libs), "kafka.Kafka", str(self.cfg.properties_file)]
        with open(self.cfg.log_file, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.cfg.data_dir, start_new_session=True,
                                    preexec_fn=die_with_parent if self.cfg.die_with_parent else None)
        self.cfg.pid_file.write_text(f"{proc.pid}\n")
        log.info("started kafka %s pid %d on %s", self.cfg.version, proc.pid, self.bootstrap)
        return proc.pid

    def wait_ready(self, pid: int | None) -> BrokerStatus:
        """Wait (up to ``start_timeout_s``) until the process answers with our cluster id and every partition
        has a serving leader; raise :class:`BrokerError` with the log's tail if it exits or times out."""
        deadline = time.monotonic() + self.cfg.start_timeout_s
        want = read_cluster_id(self.cfg.log_dirs)
        while time.monotonic() < deadline:
            if pid is None or not pid_alive(pid):
                self.cfg.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"kafka exited during start-up; last lines of {self.cfg.log_file}:\n"
                                  f"{self.log_tail()}")
            md = self._metadata(2.0)
            if md is not None and md[0] == want and self._partitions_serving(5.0):
                return self.status()
            time.sleep(0.3)
        raise BrokerError(f"kafka did not answer metadata requests on {self.bootstrap} within "
                          f"{self.cfg.start_timeout_s:.0f} s; last lines of {self.cfg.log_file}:\n{self.log_tail()}")

    # ---- stop ---------------------------------------------------------------------------------------------
    def kill(self) -> bool:
        """SIGKILL now (no controlled shutdown: the crash the fault tests inject). True if ours was running."""
        pid = self._our_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not pid_alive(pid):
                break
            time.sleep(0.025)
        self.cfg.pid_file.unlink(missing_ok=True)
        return True

    def stop(self) -> bool:
        """SIGTERM and wait (controlled shutdown flushes logs); SIGKILL after ``stop_timeout_s``.

        Returns True if a running broker was stopped, False if none was running.
        """
        pid = self._our_pid()
        if pid is None:
            self.cfg.pid_file.unlink(missing_ok=True)
            return False
        clean = terminate(pid, self.cfg.stop_timeout_s)
        if not clean:
            log.warning("kafka pid %d ignored SIGTERM for %.0f s and was killed", pid, self.cfg.stop_timeout_s)
        self.cfg.pid_file.unlink(missing_ok=True)
        return True
