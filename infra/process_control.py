"""Small OS helpers for the detached broker process: liveness, identity, graceful stop, port probing."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from pathlib import Path

__all__ = ["die_with_parent", "pid_alive", "pid_cmdline", "read_pid", "terminate", "port_free", "free_port", "free_port_run",
           "PortInUse"]


class PortInUse(RuntimeError):
    """The requested port is already bound by another process."""


def die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM this child when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> None:
    """Collect a dead child of ours so it doesn't linger as a zombie (no-op for non-children)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    _reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError as e:
            return e.errno == errno.EPERM
        return True
    return state not in ("Z", "X")


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def terminate(pid: int, timeout_s: float) -> bool:
    """SIGTERM, wait up to ``timeout_s`` for a clean shutdown, then SIGKILL. True if it stopped cleanly."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(100):
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    return False


def port_free(host: str, port: int) -> bool:
    """Can we listen on ``host:port``? SO_REUSEADDR as the JVM sets it, so TIME_WAIT leftovers don't count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """A port the OS considers free right now (there is an unavoidable race until the broker binds it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if not avoid or port not in avoid:
            return port
    raise RuntimeError("could not find a free port")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_run(host: str, n: int, low: int = 20000) -> int:
    """A base port whose ``n`` consecutive ports are all free now, *below* the kernel's ephemeral range.

    Why below: cluster nodes are killed and restarted on their ports, and while one is down the kernel may hand its
    port to an outgoing connection (clients reconnecting to the others) as the local port; the restart then finds
    it taken (seen in the cluster fault test with ports from :func:`free_port`).
    """
    import random

    top = max(low + n, _ephemeral_low() - n)
    for _ in range(200):
        base = random.randrange(low, top)  # noqa: S311  (not a secret)
        if all(port_free(host, base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no run of {n} free ports found in {low}..{top}")
