"""Outputs are replaced whole or not at all."""
import os

import pytest

from pipeline.atomic import atomic_dir, atomic_file


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


def test_successful_dir_write_replaces_old_content(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert os.stat(out).st_mode & 0o755 == 0o755


def test_failed_file_write_leaves_nothing(tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(ValueError):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
