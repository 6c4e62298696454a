"""Mutation benchmark of the control core: ``python -m bench.mutation --list --json FILE`` or ``--run``.

Each module of :mod:`bench.mutation.modules` is mutated in a temporary COPY of the repository (the files git
tracks or would track), never in the worktree. For every sampled mutant only that module's listed test files
run, one pytest process at a time, ``nice``d, with a per-mutant timeout; the mutant is killed when the tests
fail (or cannot even be collected) or run past the timeout. A benchmark, not a CI step: see docs/mutation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.mutation.modules import TARGETS, Target, target_for
from bench.mutation.mutator import Mutant, apply, mutants

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ModuleResult:
    module: str
    tests: list[str]
    total: int
    tried: int = 0
    killed: int = 0
    timeouts: int = 0
    baseline_s: float = 0.0
    seconds: float = 0.0
    survivors: list[dict[str, object]] = field(default_factory=list)
    error: str = ""

    @property
    def score(self) -> float:
        return self.killed / self.tried if self.tried else 1.0

    def as_json(self) -> dict[str, object]:
        return {"module": self.module, "tests": self.tests, "mutants_total": self.total, "tried": self.tried,
                "killed": self.killed, "timeouts": self.timeouts, "score": round(self.score, 4),
                "baseline_s": round(self.baseline_s, 2), "seconds": round(self.seconds, 1),
                "survivors": self.survivors, **({"error": self.error} if self.error else {})}


def copy_repo(dest: Path) -> None:
    """The files git tracks or would track (no .venv, no data, no caches) copied under ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in files:
        src = ROOT / rel
        if rel and src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def sample(all_mutants: list[Mutant], n: int, seed: int, module: str) -> list[Mutant]:
    """``n`` mutants drawn deterministically from (seed, module); all of them when there are fewer."""
    if n <= 0 or len(all_mutants) <= n:
        return list(all_mutants)
    return sorted(random.Random(f"{seed}:{module}").sample(all_mutants, n))


def _env(copy: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1",
            "PRESERVE_DATA": os.environ.get("PRESERVE_DATA", str((ROOT / ".." / "shared" / "data").resolve()))}


class TestRunner:
    """Runs a module's tests in the copy: through a warm fork server (default) or a fresh pytest process each
    time (``fresh=True``, the reference, ~2-3 s slower per mutant)."""

    def __init__(self, copy: Path, niceness: int, fresh: bool) -> None:
        self.copy, self.niceness, self.fresh = copy, niceness, fresh
        self._server: subprocess.Popen[str] | None = None

    def run(self, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float]:
        if self.fresh:
            return run_tests(self.copy, tests, timeout_s, self.niceness)
        if self._server is None:
            self._server = subprocess.Popen(
                ["nice", "-n", str(self.niceness), sys.executable, "-m", "bench.mutation.forkserver"],
                cwd=self.copy, env=_env(self.copy), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True)
        assert self._server.stdin is not None and self._server.stdout is not None
        self._server.stdin.write(json.dumps({"tests": list(tests), "timeout": timeout_s}) + "\n")
        self._server.stdin.flush()
        line = self._server.stdout.readline()
        if not line:
            raise RuntimeError("the fork server died; rerun with --fresh-processes")
        reply = json.loads(line)
        return reply["status"], float(reply["seconds"])

    def close(self) -> None:
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)
            self._server = None


def run_tests(copy: Path, tests: tuple[str, ...], timeout_s: float, niceness: int) -> tuple[str, float]:
    """('pass' | 'fail' | 'timeout', seconds) of the listed tests in the copy, in their own process group."""
    env = _env(copy)
    cmd = ["nice", "-n", str(niceness), sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "--no-header", *tests]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout", time.monotonic() - start
    return ("pass" if rc == 0 else "fail"), time.monotonic() - start


def run_module(copy: Path, target: Target, n: int, seed: int, timeout_s: float | None, niceness: int,
               log: bool, fresh: bool = False) -> ModuleResult:
    path = copy / target.module
    original = path.read_text()
    lines = original.splitlines()
    every = mutants(original)
    chosen = sample(every, n, seed, target.module)
    res = ModuleResult(target.module, list(target.tests), len(every))
    if not target.tests:  # pytest without paths would run the whole suite
        res.error = "no test files listed (none existed at the baseline revision?)"
        return res
    runner = TestRunner(copy, niceness, fresh)
    status, res.baseline_s = runner.run(target.tests, 600.0)
    if status != "pass":
        runner.close()
        res.error = f"its tests do not pass unmutated ({status}): {' '.join(target.tests)}"
        return res
    limit = timeout_s if timeout_s is not None else 3 * res.baseline_s + 10.0
    start = time.monotonic()
    try:
        for k, m in enumerate(chosen, 1):
            path.write_text(apply(original, m))
            status, secs = runner.run(target.tests, limit)
            res.tried += 1
            if status == "pass":
                res.survivors.append({"line": m.line, "mutation": m.description, "key": m.key,
                                      "original": lines[m.line - 1].strip() if 0 < m.line <= len(lines) else ""})
            else:
                res.killed += 1
                res.timeouts += status == "timeout"
            if log:
                print(f"  [{k}/{len(chosen)}] {target.module}:{m.line} {m.description}: "
                      f"{'SURVIVED' if status == 'pass' else 'killed' + (' (timeout)' if status == 'timeout' else '')}"
                      f" {secs:.1f}s", file=sys.stderr, flush=True)
    finally:
        path.write_text(original)
        runner.close()
    res.seconds = time.monotonic() - start
    return res


def _exists_at(rev: str, path: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{rev}:{path}"], cwd=ROOT, capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="list the modules and their test files")
    mode.add_argument("--run", action="store_true", help="mutation-test the modules")
    ap.add_argument("--module", action="append", default=[], help="only this module (repeatable; path as listed)")
    ap.add_argument("--mutants", type=int, default=40, help="sampled mutants per module (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per mutant's test run (default: 3 x the unmutated run + 10 s)")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the test processes")
    ap.add_argument("--json", type=Path, default=None, help="write the list / the results here")
    ap.add_argument("--quiet", action="store_true", help="no per-mutant progress on stderr")
    ap.add_argument("--fresh-processes", action="store_true",
                    help="a new pytest process per mutant instead of the warm fork server (slower; the reference)")
    ap.add_argument("--baseline-rev", default=None,
                    help="run only the listed test files that existed at this git revision (the score before "
                         "newer tests were written)")
    args = ap.parse_args(argv)

    targets = [target_for(m) for m in args.module] if args.module else list(TARGETS)
    if args.baseline_rev:
        targets = [Target(t.module, tuple(p for p in t.tests if _exists_at(args.baseline_rev, p))) for t in targets]
    missing = [p for t in targets for p in (t.module, *t.tests) if not (ROOT / p).is_file()]
    if missing:
        print(f"listed files missing (update bench/mutation/modules.py): {missing}", file=sys.stderr)
        return 2
    if args.list:
        listing = [t.as_json() for t in targets]
        if args.json:
            args.json.write_text(json.dumps(listing, indent=2) + "\n")
        else:
            print(json.dumps(listing, indent=2))
        return 0

    results: list[ModuleResult] = []
    # a SIGTERM unwinds like Ctrl-C, so the temporary copy is removed and no fork server is left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="preserve-mutation-") as tmp:
        copy = Path(tmp)
        copy_repo(copy)
        for t in targets:
            r = run_module(copy, t, args.mutants, args.seed, args.timeout, args.nice, not args.quiet,
                           args.fresh_processes)
            results.append(r)
            if r.error:
                print(f"{r.module}: NOT SCORED: {r.error}", flush=True)
                continue
            print(f"{r.module}: {r.score:.2f} ({r.killed} / {r.tried} killed, {r.timeouts} by timeout; "
                  f"{r.total} mutants in all; {r.seconds:.0f} s)", flush=True)
            for s in r.survivors:
                print(f"    survived {r.module}:{s['line']}  {s['mutation']}  |  {s['original']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "mutants_per_module": args.mutants,
                                         "modules": [r.as_json() for r in results]}, indent=2) + "\n")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
