"""Outputs are replaced whole or not at all, with the modes of files made the ordinary way."""
import os
import signal
import stat
import subprocess
import sys

import pytest

from pipeline.common.files import atomic_dir, atomic_file


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_failed_dir_write_keeps_previous_output_and_leaves_no_temp(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_successful_dir_write_replaces_old_content_with_a_mkdir_mode(tmp_path):
    """The temporary folder is private (0700) while written; in place it has a mkdir's mode under the umask."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert mode(out) == 0o777 & ~current_umask()


def test_failed_file_write_leaves_nothing_and_a_whole_one_gets_an_open_mode(tmp_path):
    """The file in place has an open()'s mode under the umask, not the temporary file's private 0600."""
    target = tmp_path / "model.bin"
    with pytest.raises(ValueError):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert mode(target) == 0o666 & ~current_umask()


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from pipeline.common.files import atomic_dir, atomic_file
root = Path(sys.argv[1])
with atomic_dir(root / "out") as tmp, atomic_file(root / "model.bin") as part:
    (tmp / "a.npy").write_bytes(bytes(1000))
    part.write_bytes(bytes(1000))
    os.kill(os.getpid(), signal.SIGKILL)  # no except, no finally: the temporaries stay
"""


def test_what_a_killed_write_leaves_goes_with_the_next_write(tmp_path):
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and left[0].startswith(".model.bin.") and left[1].startswith(".out.")
    (tmp_path / ".out.old").mkdir()  # what a kill between atomic_dir's two renames leaves
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.npy").write_bytes(b"whole")
    with atomic_file(tmp_path / "model.bin") as part:
        part.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "out"]
