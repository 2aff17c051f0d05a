"""Atomic writes: what a killed writer left behind is gone after the next successful write."""

import signal
import subprocess
import sys

import pytest

from mmneuro.io import atomic_path

KILLED_MID_WRITE = """
import os, signal, sys
from mmneuro.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    if sys.argv[2] == "dir":
        tmp.mkdir()
        tmp = tmp / "part.csv"
    tmp.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_rerun_after_a_kill_leaves_no_hidden_temp_files(tmp_path, kind):
    target = tmp_path / ("syllables.nc" if kind == "file" else "analysis")
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target), kind])
    assert done.returncode == -signal.SIGKILL
    assert not target.exists() and len(list(tmp_path.iterdir())) == 1  # the killed writer's temp
    with atomic_path(target) as tmp:
        if kind == "dir":
            tmp.mkdir()
            (tmp / "done.csv").write_text("complete")
        else:
            tmp.write_text("complete")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
