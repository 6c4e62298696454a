"""Workers leave no `preserve-faust-<pid>` folders behind in the temp directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.app import faust_datadir


def test_folders_of_workers_that_are_gone_are_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / f"preserve-faust-{dead}").mkdir()
    (tmp_path / f"preserve-faust-{os.getppid()}").mkdir()  # a running process (this test's parent)
    mine = faust_datadir(tmp_path)
    assert mine.name == f"preserve-faust-{os.getpid()}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"preserve-faust-{os.getppid()}"]


def test_a_worker_process_removes_its_folder_when_it_exits(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from streams.app import faust_datadir; "
            "p = faust_datadir(Path(sys.argv[1])); p.mkdir(); print(p)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert not Path(out.stdout.strip()).exists() and list(tmp_path.iterdir()) == []
