"""Locating the tools the broker needs: a Java 17+ runtime and Maven.

Kafka 4.x requires Java 17 for the broker; we check up front so the user gets one clear message instead of a
JVM stack trace buried in a log file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["ToolMissing", "MIN_JAVA", "find_java", "java_major_version", "find_maven", "parse_java_version"]

MIN_JAVA = 17


class ToolMissing(RuntimeError):
    """A required external tool (java, mvn) is absent or too old; the message says how to fix it."""


def parse_java_version(text: str) -> int | None:
    """Major version from ``java -version`` output (``"17.0.15"`` -> 17, legacy ``"1.8.0_392"`` -> 8)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        return int(m.group(2))
    return major


def find_java() -> str:
    """Path of ``java``: ``$JAVA_HOME/bin/java`` if set, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ToolMissing(f"java not found: install a Java {MIN_JAVA}+ runtime (e.g. `apt-get install "
                          f"openjdk-17-jre-headless`) or set JAVA_HOME")
    return found


def java_major_version(java: str) -> int:
    """Run ``java -version`` and return the major version; raise :class:`ToolMissing` if below 17."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    major = parse_java_version(out.stderr + out.stdout)
    if major is None:
        raise ToolMissing(f"could not read the version of {java}: {out.stderr.strip()[:200]}")
    if major < MIN_JAVA:
        raise ToolMissing(f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA}+ (set JAVA_HOME to a newer JDK)")
    return major


def find_maven() -> str:
    found = shutil.which("mvn")
    if not found:
        raise ToolMissing("mvn (Apache Maven) not found: it resolves the Kafka jars from Maven Central once. "
                          "Install it (e.g. `apt-get install maven`) or use infra/docker-compose.yml")
    return found
