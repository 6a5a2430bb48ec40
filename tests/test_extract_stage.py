"""extract_frames on real GRID clips: packed frames equal a sequential decode, resampling, trim, bad inputs, DVC."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_stages
from decoders import decord_batch
from pipeline.fetch import fetch_videos
from pipeline.params import Video
from processes import sh

CLIPS = {"bbaf2n": "A", "lrwp9a": "B"}


def fetched(tmp_path: Path, samples: Path, **trim) -> Path:
    """data/raw as the fetch stage leaves it: the two clips, the second trimmed as given."""
    raw = tmp_path / "raw"
    raw.mkdir()
    videos = (Video(name="bbaf2n", domain="A", path=str(samples / "A" / "bbaf2n.mpg"), split="train"),
              Video(name="lrwp9a", domain="B", path=str(samples / "B" / "lrwp9a.mpg"), **trim))
    fetch_videos(videos, raw).to_csv(raw / "videos.csv", index=False)
    return raw


def extract(tmp_path: Path, raw: Path, fps=None) -> subprocess.CompletedProcess:
    params = tmp_path / "params.yaml"
    videos = [{"name": name, "domain": domain, "path": "unused"} for name, domain in CLIPS.items()]
    params.write_text(yaml.safe_dump({"data": {"videos": videos, "fps": fps}}))
    return subprocess.run([sys.executable, str(REPO / "stages" / "extract_frames.py"), "--raw", str(raw),
                           "--out", str(tmp_path / "frames"), "--params", str(params)], capture_output=True, text=True)


def test_frames_equal_a_sequential_decode_and_trim_is_exact(tmp_path, samples):
    raw = fetched(tmp_path, samples, start=1.0, end=2.0)
    result = extract(tmp_path, raw)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "frames"
    assert sorted(p.name for p in out.iterdir()) == ["bbaf2n.csv", "bbaf2n.npy", "lrwp9a.csv", "lrwp9a.npy", "videos.csv"]
    frames = np.load(out / "bbaf2n.npy", mmap_mode="r")
    assert frames.dtype == np.uint8 and frames.shape == (75, 288, 360, 3)
    assert np.array_equal(frames, decord_batch(samples / "A" / "bbaf2n.mpg"))
    trimmed = np.load(out / "lrwp9a.npy")
    assert np.array_equal(trimmed, decord_batch(samples / "B" / "lrwp9a.mpg")[25:50])
    table = pd.read_csv(out / "lrwp9a.csv")
    assert list(table.columns) == ["frame", "source_frame", "time"]
    assert table["frame"].tolist() == list(range(25)) and table["source_frame"].tolist() == list(range(25, 50))
    assert table["time"].tolist() == pytest.approx([i / 25 for i in range(25, 50)])
    listing = pd.read_csv(out / "videos.csv")
    assert list(listing.columns) == ["name", "domain", "split", "file", "sha256", "start", "end",
                                     "fps", "source_fps", "frames", "width", "height"]
    assert listing[["name", "fps", "source_fps", "frames", "width", "height"]].values.tolist() == [
        ["bbaf2n", 25.0, 25.0, 75, 360, 288], ["lrwp9a", 25.0, 25.0, 25, 360, 288]]
    assert listing["start"].tolist()[1] == 1.0 and np.isnan(listing["start"].tolist()[0])


def test_resampling_to_10_fps(tmp_path, samples):
    raw = fetched(tmp_path, samples)
    assert extract(tmp_path, raw, fps=10).returncode == 0
    table = pd.read_csv(tmp_path / "frames" / "bbaf2n.csv")
    sources = table["source_frame"].tolist()
    assert len(sources) == 30 and sources[:4] == [0, 3, 5, 8]
    assert table["time"].tolist() == pytest.approx([s / 25 for s in sources])
    frames = np.load(tmp_path / "frames" / "bbaf2n.npy")
    assert np.array_equal(frames, decord_batch(samples / "A" / "bbaf2n.mpg")[sources])
    assert pd.read_csv(tmp_path / "frames" / "videos.csv")["fps"].tolist() == [10.0, 10.0]


def test_bad_videos_are_one_line_errors_and_leave_no_output(tmp_path, samples, shared_data):
    raw = fetched(tmp_path, samples)
    noise = raw / "lrwp9a.mpg"
    noise.write_bytes(np.random.default_rng(1).bytes(noise.stat().st_size))
    cut = raw / "bbaf2n.avi"  # an AVI cut short: fewer frames than its header declares
    cut.write_bytes((shared_data / "robustness" / "Megamind.avi").read_bytes()[:600_000])
    listing = pd.read_csv(raw / "videos.csv")
    listing["file"] = ["bbaf2n.avi", "lrwp9a.mpg"]
    listing.to_csv(raw / "videos.csv", index=False)
    for bad, why in ((cut, "truncated"), (noise, "not a readable video")):
        result = extract(tmp_path, raw)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1].startswith(f"extract_frames: error: {bad}: {why}")
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "frames").exists() and not list(tmp_path.glob(".frames*"))
        bad.write_bytes((samples / "A" / "bbaf2n.mpg").read_bytes())  # repair it: the next one fails


def test_dvc_repro_runs_fetch_and_extract_then_is_a_no_op(tmp_path, samples):
    """The fetch and extract_frames entries of dvc.yaml, run by DVC in a fresh git repo."""
    copy_stages(tmp_path, "fetch", "extract_frames")
    for name, domain in CLIPS.items():
        (tmp_path / "data" / "samples" / domain).mkdir(parents=True, exist_ok=True)
        shutil.copy(samples / domain / f"{name}.mpg", tmp_path / "data" / "samples" / domain)
    videos = [{"name": n, "domain": d, "path": f"data/samples/{d}/{n}.mpg"} for n, d in CLIPS.items()]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"videos": videos, "fps": 5}}))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    first = sh(tmp_path, "dvc", "repro", "extract_frames").stdout
    assert "Running stage 'fetch'" in first and "Running stage 'extract_frames'" in first
    assert np.load(tmp_path / "data" / "frames" / "bbaf2n.npy").shape == (15, 288, 360, 3)
    assert "Running stage" not in sh(tmp_path, "dvc", "repro", "extract_frames").stdout
