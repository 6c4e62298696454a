"""Resolve the Kafka broker's jars from Maven Central into a reusable cache directory.

We generate a tiny pom that depends on ``org.apache.kafka:kafka_2.13`` (the broker, which pulls the server,
raft, metadata, storage and coordinator modules) plus a log4j2 binding for its slf4j logging, and let
``mvn dependency:copy-dependencies`` copy the resolved jars into ``<cache>/libs``. A ``.complete`` stamp marks
a finished resolution so later starts skip Maven entirely; a file lock keeps concurrent test sessions from
resolving into the same directory at once.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from infra.java_runtime import find_maven

__all__ = ["DEFAULT_KAFKA_VERSION", "LOG4J_VERSION", "default_cache_dir", "jars_cached", "render_pom", "resolve_kafka_jars",
           "ResolveError"]

DEFAULT_KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"


class ResolveError(RuntimeError):
    """Maven could not resolve the broker's jars (offline, bad version, ...)."""


def default_cache_dir(version: str) -> Path:
    """``$PRESERVE_KAFKA_CACHE`` or ``~/.cache/preserve/kafka-<version>``."""
    base = os.environ.get("PRESERVE_KAFKA_CACHE")
    if base:
        return Path(base).expanduser() / f"kafka-{version}"
    return Path.home() / ".cache" / "preserve" / f"kafka-{version}"


def render_pom(version: str, log4j_version: str = LOG4J_VERSION) -> str:
    """The pom whose dependencies are everything the broker needs on its class path at run time."""
    deps = [
        ("org.apache.kafka", "kafka_2.13", version),
        # Kafka 4 logs through slf4j 1.7 -> log4j2; the binding is a runtime-only dependency of the distribution.
        ("org.apache.logging.log4j", "log4j-slf4j-impl", log4j_version),
        ("org.apache.logging.log4j", "log4j-core", log4j_version),
    ]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps)
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>preserve</groupId><artifactId>kafka-runtime</artifactId><version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{body}
  </dependencies>
</project>
"""


def jars_cached(version: str, cache_dir: Path | None = None) -> bool:
    return ((cache_dir or default_cache_dir(version)) / ".complete").is_file()


def resolve_kafka_jars(version: str, cache_dir: Path | None = None, timeout_s: float = 900.0) -> Path:
    """Return ``<cache>/libs`` with the broker's jars, resolving them with Maven the first time.

    :param version: Kafka version, e.g. ``"4.1.1"``.
    :param cache_dir: where to keep the jars (default :func:`default_cache_dir`).
    :param timeout_s: upper bound for the Maven run (a cold resolution downloads ~40 MB).
    """
    cache = cache_dir or default_cache_dir(version)
    libs = cache / "libs"
    stamp = cache / ".complete"
    if stamp.is_file():
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving right now: wait for it
        if stamp.is_file():
            return libs
        mvn = find_maven()
        (cache / "pom.xml").write_text(render_pom(version))
        cmd = [mvn, "-q", "-B", "-f", str(cache / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise ResolveError(f"Maven did not finish within {timeout_s:.0f} s resolving Kafka {version}") from e
        if out.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            tail = (out.stdout + out.stderr).strip().splitlines()[-15:]
            raise ResolveError(f"Maven failed to resolve Kafka {version} (is Maven Central reachable? is the "
                               f"version right?):\n" + "\n".join(tail))
        stamp.write_text(version + "\n")
    return libs
