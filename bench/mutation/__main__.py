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

    @property
    def score(self) -> float:
        return self.killed / self.tried if self.tried else 1.0

    def as_json(self) -> dict[str, object]:
        return {"module": self.module, "tests": self.tests, "mutants_total": self.total, "tried": self.tried,
                "killed": self.killed, "timeouts": self.timeouts, "score": round(self.score, 4),
                "baseline_s": round(self.baseline_s, 2), "seconds": round(self.seconds, 1),
                "survivors": self.survivors}


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


def run_tests(copy: Path, tests: tuple[str, ...], timeout_s: float, niceness: int) -> tuple[str, float]:
    """('pass' | 'fail' | 'timeout', seconds) of the listed tests in the copy, in their own process group."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1",
           "PRESERVE_DATA": os.environ.get("PRESERVE_DATA", str((ROOT / ".." / "shared" / "data").resolve()))}
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
               log: bool) -> ModuleResult:
    path = copy / target.module
    original = path.read_text()
    lines = original.splitlines()
    every = mutants(original)
    chosen = sample(every, n, seed, target.module)
    res = ModuleResult(target.module, list(target.tests), len(every))
    status, res.baseline_s = run_tests(copy, target.tests, 600.0, niceness)
    if status != "pass":
        raise SystemExit(f"{target.module}: its tests do not pass unmutated ({status}): "
                         f"{' '.join(target.tests)}")
    limit = timeout_s if timeout_s is not None else 3 * res.baseline_s + 10.0
    start = time.monotonic()
    try:
        for k, m in enumerate(chosen, 1):
            path.write_text(apply(original, m))
            status, secs = run_tests(copy, target.tests, limit, niceness)
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
    res.seconds = time.monotonic() - start
    return res


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
    ap.add_argument("--skip-missing-tests", action="store_true",
                    help="drop listed test files that do not exist (to score an older tree as a baseline)")
    args = ap.parse_args(argv)

    targets = [target_for(m) for m in args.module] if args.module else list(TARGETS)
    if args.skip_missing_tests:
        targets = [Target(t.module, tuple(p for p in t.tests if (ROOT / p).is_file())) for t in targets]
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
    with tempfile.TemporaryDirectory(prefix="preserve-mutation-") as tmp:
        copy = Path(tmp)
        copy_repo(copy)
        for t in targets:
            r = run_module(copy, t, args.mutants, args.seed, args.timeout, args.nice, not args.quiet)
            results.append(r)
            print(f"{r.module}: {r.score:.2f} ({r.killed} / {r.tried} killed, {r.timeouts} by timeout; "
                  f"{r.total} mutants in all; {r.seconds:.0f} s)", flush=True)
            for s in r.survivors:
                print(f"    survived {r.module}:{s['line']}  {s['mutation']}  |  {s['original']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "mutants_per_module": args.mutants,
                                         "modules": [r.as_json() for r in results]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
