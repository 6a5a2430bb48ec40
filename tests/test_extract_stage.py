"""extract_frames on real GRID clips: the stored JPEGs are those of a sequential decode, resampling, trim,
quality, bad inputs, DVC."""
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.decoders import opencv_frames
from helpers.processes import sh
from helpers.repo import REPO, copy_stages, over_shipped

from pipeline.common.params import Video
from pipeline.data.fetch import fetch_videos
from pipeline.evaluate.reconstruction import psnr
from pipeline.store.frames import DECODERS, load_frames

pytestmark = pytest.mark.integration

CLIPS = {"bbaf2n": "A", "lrwp9a": "B"}


def fetched(tmp_path: Path, samples: Path, **trim) -> Path:
    """data/raw as the fetch stage leaves it: the two clips, the second trimmed as given."""
    raw = tmp_path / "raw"
    raw.mkdir()
    videos = (Video(name="bbaf2n", domain="A", path=str(samples / "A" / "bbaf2n.mpg"), split="train"),
              Video(name="lrwp9a", domain="B", path=str(samples / "B" / "lrwp9a.mpg"), **trim))
    fetch_videos(videos, raw).to_csv(raw / "videos.csv", index=False)
    return raw


def extract(tmp_path: Path, raw: Path, fps=None, out="frames", **data) -> subprocess.CompletedProcess:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(over_shipped({"data": {"fps": fps, **data}})))
    return subprocess.run([sys.executable, str(REPO / "stages" / "extract_frames.py"), "--raw", str(raw),
                           "--out", str(tmp_path / out), "--params", str(params)], capture_output=True, text=True)


def stored_jpegs(frames_dir: Path, name: str) -> list[bytes]:
    """Each frame's bytes in `<name>.mjpeg`, cut where the frame table says."""
    data = (frames_dir / f"{name}.mjpeg").read_bytes()
    table = pd.read_csv(frames_dir / f"{name}.csv")
    assert table["offset"].tolist() == [0, *np.cumsum(table["bytes"])[:-1]] and len(data) == table["bytes"].sum()
    return [data[row.offset:row.offset + row.bytes] for row in table.itertuples()]


def jpegs(frames: np.ndarray, quality: int = 95) -> list[bytes]:
    """OpenCV's JPEG of each RGB frame: the encoder is deterministic, so the stored bytes must match."""
    return [cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for rgb in frames]


def test_frames_equal_a_sequential_decode_and_trim_is_exact(tmp_path, samples):
    raw = fetched(tmp_path, samples, start=1.0, end=2.0)
    result = extract(tmp_path, raw)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "frames"
    assert sorted(p.name for p in out.iterdir()) == ["bbaf2n.csv", "bbaf2n.mjpeg", "lrwp9a.csv", "lrwp9a.mjpeg",
                                                     "videos.csv"]
    source = opencv_frames(samples / "A" / "bbaf2n.mpg")
    assert stored_jpegs(out, "bbaf2n") == jpegs(source)
    frames, _ = load_frames(out, "bbaf2n", 75)
    assert frames.shape == (75, 288, 360, 3) and frames[-1].dtype == np.uint8
    assert min(psnr(frame, original) for frame, original in zip(frames, source)) > 40
    assert stored_jpegs(out, "lrwp9a") == jpegs(opencv_frames(samples / "B" / "lrwp9a.mpg")[25:50])
    table = pd.read_csv(out / "lrwp9a.csv")
    assert list(table.columns) == ["frame", "source_frame", "time", "offset", "bytes"]
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
    assert stored_jpegs(tmp_path / "frames", "bbaf2n") == jpegs(opencv_frames(samples / "A" / "bbaf2n.mpg")[sources])
    assert pd.read_csv(tmp_path / "frames" / "videos.csv")["fps"].tolist() == [10.0, 10.0]


def test_jpeg_quality_trades_size_for_fidelity(tmp_path, samples):
    raw = fetched(tmp_path, samples)
    source = opencv_frames(samples / "A" / "bbaf2n.mpg")
    sizes, psnrs = [], []
    for quality in (50, 100):
        assert extract(tmp_path, raw, out=f"q{quality}", jpeg_quality=quality).returncode == 0
        assert stored_jpegs(tmp_path / f"q{quality}", "bbaf2n") == jpegs(source, quality)
        frames, _ = load_frames(tmp_path / f"q{quality}", "bbaf2n", 75)
        sizes.append((tmp_path / f"q{quality}" / "bbaf2n.mjpeg").stat().st_size)
        psnrs.append(np.mean([psnr(frame, original) for frame, original in zip(frames, source)]))
    assert sizes[1] > 3 * sizes[0] and psnrs[1] > psnrs[0] + 5
    assert source.nbytes > 5 * sizes[1]  # even quality 100 is far smaller than raw frames


def test_bad_videos_are_one_line_errors_and_leave_no_output(tmp_path, samples, robustness):
    raw = fetched(tmp_path, samples)
    noise = raw / "lrwp9a.mpg"
    noise.write_bytes(np.random.default_rng(1).bytes(noise.stat().st_size))
    cut = raw / "bbaf2n.avi"  # an AVI cut short: fewer frames than its header declares
    cut.write_bytes((robustness / "Megamind.avi").read_bytes()[:600_000])
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
    (tmp_path / "videos.yaml").write_text(yaml.safe_dump({"videos": videos}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped({"data": {"fps": 5, "jpeg_quality": 95}})))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    first = sh(tmp_path, "dvc", "repro", "extract_frames").stdout
    assert "Running stage 'fetch'" in first and "Running stage 'extract_frames'" in first
    assert load_frames(tmp_path / "data" / "frames", "bbaf2n", 15)[0].shape == (15, 288, 360, 3)
    assert "Running stage" not in sh(tmp_path, "dvc", "repro", "extract_frames").stdout


def test_stored_frames_iterate_in_any_order_while_decoding_ahead(tmp_path, samples):
    out = tmp_path / "frames"
    assert extract(tmp_path, fetched(tmp_path, samples)).returncode == 0
    frames, _ = load_frames(out, "bbaf2n", 75)
    order = [5, 0, 5, 74, 1, 2, 3]
    assert all(np.array_equal(a, frames[i]) for a, i in zip(frames.iter_at(order), order, strict=True))
    assert sum(1 for _ in frames) == 75
    before = threading.active_count()
    reader = iter(frames)
    assert np.array_equal(next(reader), frames[0]) and before < threading.active_count() <= before + DECODERS
    reader.close()  # a reader that stops early leaves nothing running
    assert threading.active_count() == before
    with pytest.raises(TypeError, match="one int index"):
        frames[1:3]


def test_stored_frames_decode_reduced_to_the_smallest_scale_that_keeps_the_side_asked(tmp_path, samples):
    """libjpeg's DCT scaling (the scene-cut histograms read frames this way): 360x288 frames asked for
    a long side of at least 128 px decode at 1/2, 180x144, close to the full frames shrunk."""
    out = tmp_path / "frames"
    assert extract(tmp_path, fetched(tmp_path, samples)).returncode == 0
    frames, _ = load_frames(out, "bbaf2n", 75)
    small = frames.reduced(128)
    assert small.shape == (75, 144, 180, 3) and frames.reduced(90).shape == (75, 72, 90, 3)
    assert frames.reduced(200).shape == frames.shape  # 1/2 would be shorter than asked
    shrunk = [cv2.resize(frames[i], (180, 144), interpolation=cv2.INTER_AREA) for i in (0, 40, 74)]
    assert min(psnr(a, small[i]) for a, i in zip(shrunk, (0, 40, 74))) > 30
