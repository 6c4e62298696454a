"""Resident memory and CPU time of a process tree, read from ``/proc`` (Linux; no psutil dependency)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcSample", "sample_tree"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class ProcSample:
    rss_mb: float  # resident set of the process and its descendants
    cpu_s: float  # user + system CPU seconds of the process and its descendants
    alive: bool


def _children(pid: int) -> list[int]:
    out: list[int] = []
    task = Path(f"/proc/{pid}/task")
    try:
        for t in task.iterdir():
            text = (t / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


def _one(pid: int) -> tuple[float, float] | None:
    try:
        statm = Path(f"/proc/{pid}/statm").read_text().split()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces: skip past ")"
    utime, stime = int(fields[11]), int(fields[12])
    return int(statm[1]) * _PAGE / 2**20, (utime + stime) / _TICK


def sample_tree(pid: int) -> ProcSample:
    """RSS and CPU of ``pid`` plus every descendant (a worker's JVM-less children, e.g. tokenizer threads)."""
    seen, todo = set(), [pid]
    rss = cpu = 0.0
    alive = False
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        got = _one(p)
        if got is None:
            continue
        alive = alive or p == pid
        rss += got[0]
        cpu += got[1]
        todo += _children(p)
    return ProcSample(rss, cpu, alive)
