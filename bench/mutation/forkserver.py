"""A warm test runner for mutants: imports pytest and the third-party libraries once, then forks a fresh child
per mutant that imports the project's modules from disk (so it sees the mutated file) and runs pytest.

Started by ``python -m bench.mutation`` inside the temporary copy of the repository (cwd and ``PYTHONPATH``
there). Protocol on stdin/stdout, one JSON object per line: ``{"tests": [...], "timeout": s}`` ->
``{"status": "pass" | "fail" | "timeout", "seconds": s}``. The first request also warms the server: it
collects the tests once, then forgets every module loaded from the copy, so each child re-imports them.
A pytest process per mutant costs ~2-3 s of imports on this project; a forked child ~0.3 s.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path.cwd().resolve()


def _forget_project_modules() -> None:
    for name, mod in list(sys.modules.items()):
        if name == "__main__" or name.startswith("bench"):
            continue
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve().is_relative_to(ROOT):
            del sys.modules[name]


def _warm(tests: list[str]) -> None:
    import pytest

    pid = os.fork()
    if pid == 0:  # collect in a child first: a broken suite must not break the server
        _quiet()
        os._exit(pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", *tests]))
    os.waitpid(pid, 0)
    # then import what the tests import, here, so that children inherit it
    rc = pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", *tests], plugins=[])
    del rc
    _forget_project_modules()


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _run(tests: list[str], timeout_s: float) -> tuple[str, float]:
    import pytest

    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        _quiet()
        sys.dont_write_bytecode = True
        try:
            rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests])
        except BaseException:  # noqa: BLE001  (a mutant may raise anything at import)
            rc = 99
        os._exit(int(rc))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("pass" if code == 0 else "fail"), time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start
        time.sleep(0.02)


def main() -> None:
    sys.dont_write_bytecode = True
    warmed = False
    out = os.fdopen(os.dup(1), "w")  # the protocol channel; everything else printed goes nowhere
    sys.stdout.flush()
    _quiet()
    for line in sys.stdin:
        req = json.loads(line)
        if not warmed:
            _warm(req["tests"])
            warmed = True
        status, secs = _run(req["tests"], float(req["timeout"]))
        out.write(json.dumps({"status": status, "seconds": secs}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
