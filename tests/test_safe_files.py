"""Files and names from outside never run code: a crafted training checkpoint is not unpickled,
paths or URLs full of shell syntax reach yt-dlp and PyAV (libav) as plain strings, and a
video name, which names files in every stage, must be plain letters, digits, _ and -.
(A crafted model file is refused in tests/test_translate.py.)"""
import subprocess
import sys
from pathlib import Path

import av
import pytest
import torch
import yaml
from helpers.payloads import write_torch_save
from helpers.repo import REPO, over_shipped

from pipeline.store.video import VideoWriter, iter_frames
from pipeline.train.loop import load_checkpoint

pytestmark = pytest.mark.integration

SHELL = "x; touch pwned; $(touch pwned) `touch pwned` | touch pwned"  # runs `touch pwned` if a shell ever sees it


def test_a_crafted_checkpoint_is_never_unpickled(tmp_path, capsys):
    checkpoint, marker = tmp_path / "checkpoint.pt", tmp_path / "payload_ran"
    write_torch_save(checkpoint, marker)
    assert load_checkpoint(checkpoint, {"model": "cyclegan"}, "cyclegan") is None
    assert not marker.exists()
    assert capsys.readouterr().err == f"cyclegan: cannot read {checkpoint} (UnpicklingError); starting over\n"
    torch.load(checkpoint, weights_only=False)  # what a full unpickle of the same file does
    assert marker.exists()


def stage(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{argv[0]}.py"), *argv[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_shell_syntax_in_paths_and_urls_runs_nothing_and_in_names_is_refused(tmp_path, samples, server, monkeypatch):
    clip = tmp_path / f"{SHELL}.mpg"
    clip.write_bytes((samples / "A" / "bbaf2n.mpg").read_bytes())
    videos = [{"name": "local", "domain": "A", "path": str(clip)},
              {"name": "url", "domain": "B", "url": f"{server}/sbat6n.mpg?q={SHELL}"}]
    (tmp_path / "videos.yaml").write_text(yaml.safe_dump({"videos": videos}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped({"data": {"fps": 5}})))
    for argv in (["fetch", "--out", "raw"], ["extract_frames", "--raw", "raw", "--out", "frames"]):
        done = stage(tmp_path, *argv)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.mjpeg")) == ["local.mjpeg", "url.mjpeg"]

    monkeypatch.chdir(tmp_path)  # where a shell would run `touch pwned`
    out = tmp_path / f"merged {SHELL}.mp4"
    with VideoWriter(out, 25, 360, 288, audio_from=clip, audio_end=0.4) as writer:
        for _, _, rgb in iter_frames(clip, end=0.4):
            writer.write(rgb)
    with av.open(str(out)) as merged:
        assert [s.type for s in merged.streams] == ["video", "audio"]

    (tmp_path / "videos.yaml").write_text(yaml.safe_dump({"videos": [dict(videos[0], name=SHELL)]}))
    refused = stage(tmp_path, "fetch", "--out", "named")  # a name becomes file names in every stage
    assert refused.returncode == 1 and "videos.yaml: videos[0].name" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "named").exists()
    assert not list(tmp_path.rglob("pwned"))
