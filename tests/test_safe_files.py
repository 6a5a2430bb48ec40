"""Files and names from outside never run code: a crafted training checkpoint is not unpickled, and
paths or URLs full of shell syntax reach yt-dlp, decord and PyAV (libav) as plain strings.
(A crafted model file is refused in tests/test_translate.py.)"""
import subprocess
import sys
from pathlib import Path

import av
import torch
import yaml

from pipeline.train import load_checkpoint
from pipeline.video import VideoWriter, iter_frames
from tests.test_fetch import server  # noqa: F401 (fixture: a loopback HTTP server of the A sample clips)
from tests.test_translate import write_torch_save

REPO = Path(__file__).resolve().parents[1]
SHELL = "x; touch pwned; $(touch pwned) `touch pwned` | touch pwned"  # runs `touch pwned` if a shell ever sees it


def test_a_crafted_checkpoint_is_never_unpickled(tmp_path, capsys):
    checkpoint, marker = tmp_path / "checkpoint.pt", tmp_path / "payload_ran"
    write_torch_save(checkpoint, marker)
    assert load_checkpoint(checkpoint, {"model": "cyclegan"}, "cyclegan") is None
    assert not marker.exists()
    assert capsys.readouterr().err == f"cyclegan: cannot read {checkpoint} (UnpicklingError); starting over\n"
    torch.load(checkpoint, weights_only=False)  # what a full unpickle of the same file does
    assert marker.exists()


def test_shell_syntax_in_names_paths_and_urls_runs_nothing(tmp_path, samples, server, monkeypatch):  # noqa: F811
    clip = tmp_path / f"{SHELL}.mpg"
    clip.write_bytes((samples / "A" / "bbaf2n.mpg").read_bytes())
    videos = [{"name": f"local {SHELL}", "domain": "A", "path": str(clip)},
              {"name": f"url {SHELL}", "domain": "B", "url": f"{server}/sbat6n.mpg?q={SHELL}"}]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"videos": videos, "fps": 5}}))
    for stage in (["fetch", "--out", "raw"], ["extract_frames", "--raw", "raw", "--out", "frames"]):
        done = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage[0]}.py"), *stage[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.npy")) == [f"local {SHELL}.npy", f"url {SHELL}.npy"]

    monkeypatch.chdir(tmp_path)  # where a shell would run `touch pwned`
    raw = tmp_path / "raw" / f"local {SHELL}.mpg"
    out = tmp_path / f"merged {SHELL}.mp4"
    with VideoWriter(out, 25, 360, 288, audio_from=raw, audio_end=0.4) as writer:
        for _, _, rgb in iter_frames(raw, end=0.4):
            writer.write(rgb)
    with av.open(str(out)) as merged:
        assert [s.type for s in merged.streams] == ["video", "audio"]
    assert not list(tmp_path.rglob("pwned"))
