"""The crop_faces stage script on real clips: outputs as docs/contracts.md says, summary, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.decoders import decode
from helpers.real_crops import crop
from helpers.real_frames import write_frames
from helpers.repo import REPO, over_shipped, shipped_params

from pipeline.face.geometry import crop_square
from pipeline.store.faces import CropArrayWriter
from pipeline.store.frames import FrameWriter, load_frames

pytestmark = pytest.mark.integration

TEST_SHARE = shipped_params("data").test_share

BOX_COLUMNS = ["video", "domain", "split", "frame", "time", "shot", "face", "cx", "cy", "size",
               "det_x0", "det_y0", "det_x1", "det_y1", "crop_index"]
LOAD_SIZE = 48


def run_crop(tmp_path, videos, write=True):
    """Write real frames for `videos` (unless `write` is false: they are there), run
    stages/crop_faces.py on them; return the finished process."""
    frames = write_frames(tmp_path / "frames", videos) if write else tmp_path / "frames"
    params = {"data": {"load_size": LOAD_SIZE, "margin": 0.4, "detect_every": 5, "split_seed": 0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped(params)))
    return subprocess.run([sys.executable, str(REPO / "stages" / "crop_faces.py"), "--frames", str(frames),
                           "--out", str(tmp_path / "faces"), "--metrics", str(tmp_path / "crop.json"),
                           "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True, timeout=300)


def check_contract(faces, boxes):
    """boxes.csv columns, crop arrays of the right size, crop_index numbering rows in boxes.csv order."""
    assert list(boxes.columns) == BOX_COLUMNS
    for domain in "AB":
        for split in ("train", "test"):
            crops = np.load(faces / f"{domain}_{split}.npy", mmap_mode="r")
            rows = boxes[(boxes["domain"] == domain) & (boxes["split"] == split) & boxes["face"]]
            assert crops.shape == (len(rows), LOAD_SIZE, LOAD_SIZE, 3) and crops.dtype == np.uint8
            assert list(rows["crop_index"]) == list(range(len(rows)))
    assert (boxes.loc[~boxes["face"], "crop_index"] == -1).all()
    assert boxes.loc[~boxes["face"], ["cx", "cy", "size"]].isna().all().all()


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory, samples):
    tmp = tmp_path_factory.mktemp("grid")
    clips = [("A", "bbaf2n", "train"), ("A", "bgbo1a", "train"), ("A", "lbax8n", "train"), ("A", "pgij8n", "train"),
             ("A", "sbat6n", "test"), ("A", "swbv4p", "test"),
             ("B", "brbk7n", "train"), ("B", "lbbc2a", None), ("B", "lrwp9a", "test")]
    videos = [{"name": name, "domain": domain, "split": split, "path": samples / domain / f"{name}.mpg"}
              for domain, name, split in clips]
    result = run_crop(tmp, videos)
    assert result.returncode == 0, result.stderr
    (tmp / "stderr.txt").write_text(result.stderr)  # the progress bars
    return tmp


def test_grid_faces_found_and_smoothed(grid_run):
    summary = json.loads((grid_run / "crop.json").read_text())
    assert summary["frames"] == 9 * 75
    assert summary["detection_rate"] >= 0.99
    assert summary["jitter_smoothed"] < summary["jitter_raw"]
    assert summary["A"]["train"]["frames"] == 4 * 75 and summary["A"]["test"]["frames"] == 2 * 75
    assert summary["B"]["test"]["frames"] == 75 + round(75 * TEST_SHARE)
    assert summary["detector_runs"] < summary["frames"] / 4  # sparse detection
    assert summary["scene_cuts"] == 0 and summary["other_person_shots"] == 0
    bars = (grid_run / "stderr.txt").read_text()
    assert "crop_faces: detect: 100%" in bars and f"{9 * 75}/{9 * 75} [" in bars  # counted in frames, not videos


def test_grid_outputs_follow_the_contract(grid_run):
    faces = grid_run / "faces"
    boxes = pd.read_csv(faces / "boxes.csv")
    check_contract(faces, boxes)
    splits = boxes.groupby("video")["split"].agg(set)
    assert splits["sbat6n"] == {"test"} and splits["bbaf2n"] == {"train"}  # whole clips when videos.csv says so
    test = np.flatnonzero(boxes[boxes["video"] == "lbbc2a"]["split"] == "test")
    assert len(test) == round(75 * TEST_SHARE) and np.all(np.diff(test) == 1)  # else one time segment
    frames, _ = load_frames(grid_run / "frames", "lrwp9a", 75)
    crops = np.load(faces / "B_test.npy")
    for row in boxes[boxes["video"] == "lrwp9a"].iloc[::25].itertuples():
        np.testing.assert_array_equal(crops[row.crop_index], crop_square(frames[row.frame], row.cx, row.cy,
                                                                         row.size, LOAD_SIZE))
    train = boxes[(boxes["domain"] == "A") & (boxes["split"] == "train") & boxes["face"]].reset_index(drop=True)
    same = (train["video"].shift(-2) == train["video"]) & (train["shot"].shift(-2) == train["shot"]) & \
        (train["frame"].shift(-2) == train["frame"] + 2)
    assert same.sum() == 4 * (75 - 2)  # Recycle-GAN triplets: rows t, t+1, t+2 of one shot


def test_hard_videos_run_through(tmp_path, robustness, samples):
    result = run_crop(tmp_path, [
        {"name": "megamind", "domain": "A", "path": robustness / "Megamind.avi", "limit": 210},
        {"name": "bbaf2n", "domain": "A", "split": "train", "path": samples / "A" / "bbaf2n.mpg", "limit": 20},
        {"name": "occlusion", "domain": "B", "split": "train", "path": robustness / "woman_occlusion_pexels.mp4",
         "limit": 240},
        # real footage without a face: the wooden wall left of the woman, as a test video
        {"name": "wall", "domain": "B", "split": "test", "path": robustness / "woman_occlusion_pexels.mp4",
         "limit": 48, "region": (0, 0, 160, 360)},
    ])
    assert result.returncode == 0, result.stderr
    boxes = pd.read_csv(tmp_path / "faces" / "boxes.csv")
    check_contract(tmp_path / "faces", boxes)
    megamind = boxes[boxes["video"] == "megamind"]
    assert list(np.flatnonzero(np.diff(megamind["shot"])) + 1) == [1, 98, 154, 200]
    assert not megamind["face"].iloc[0] and megamind["crop_index"].iloc[0] == -1  # the black first frame
    # one person per video: the woman (shots 1 and 3) stays, the man with glasses (2 and 4) goes
    assert megamind["face"].iloc[1:98].all() and megamind["face"].iloc[154:200].all()
    assert not megamind["face"].iloc[98:154].any() and not megamind["face"].iloc[200:].any()
    assert set(megamind["split"]) == {"train", "test"}
    assert boxes[boxes["video"] == "occlusion"]["face"].all()
    wall = boxes[boxes["video"] == "wall"]
    assert len(wall) == 48 and not wall["face"].any()
    summary = json.loads((tmp_path / "crop.json").read_text())
    assert summary["scene_cuts"] == 4 and summary["B"]["test"]["faces"] == 0 and summary["other_person_shots"] == 2
    assert summary["faceless_test_videos"] == ["wall"] and summary["videos"]["wall"]["faces"] == 0
    assert summary["videos"]["occlusion"]["faces"] == 240
    warnings = [line for line in result.stdout.splitlines() if "warning" in line]
    assert warnings == ["crop_faces: warning: no face found in test video wall (48 frames): its results will be the "
                        "source video, unchanged"]


@pytest.mark.parametrize("videos, message", [
    ([{"name": "bbaf2n", "domain": "A", "split": "train"},
      {"name": "wall", "domain": "B", "split": "train", "region": (0, 0, 160, 360)}],
     "no face in any frame of training video wall"),
    ([{"name": "bbaf2n", "domain": "A", "split": "test"}, {"name": "brbk7n", "domain": "B", "split": "train"}],
     "domain A has no training frames"),
    ([{"name": "bbaf2n", "domain": "A", "split": "train"}], "no video of domain B"),
])
def test_errors_are_one_line_and_leave_no_output(tmp_path, samples, robustness, videos, message):
    paths = {"bbaf2n": samples / "A" / "bbaf2n.mpg", "brbk7n": samples / "B" / "brbk7n.mpg",
             "wall": robustness / "woman_occlusion_pexels.mp4"}
    result = run_crop(tmp_path, [dict(v, path=paths[v["name"]], limit=12) for v in videos])
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("crop_faces: error: ") and message in error and "Traceback" not in result.stderr
    assert not (tmp_path / "faces").exists() and not (tmp_path / "crop.json").exists()


def test_missing_frames_is_an_error_naming_the_file(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "stages" / "crop_faces.py"), "--frames", str(tmp_path / "nope"),
                             "--out", str(tmp_path / "faces"), "--params", str(REPO / "params.yaml")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and f"{tmp_path / 'nope' / 'videos.csv'}: not found" in result.stderr


def cut_short(frames: Path) -> None:
    store = frames / "bbaf2n.mjpeg"
    store.write_bytes(store.read_bytes()[:store.stat().st_size // 2])


def blank_frame_5(frames: Path) -> None:
    row = pd.read_csv(frames / "bbaf2n.csv").iloc[5]
    with open(frames / "bbaf2n.mjpeg", "r+b") as store:
        store.seek(int(row["offset"]))
        store.write(bytes(int(row["bytes"])))


def appended_to(frames: Path) -> None:
    with open(frames / "bbaf2n.mjpeg", "ab") as store:
        store.write(bytes(10))


def zero_bytes_row_3(frames: Path) -> None:
    table = pd.read_csv(frames / "bbaf2n.csv")
    table.loc[3, "bytes"] = 0
    table.to_csv(frames / "bbaf2n.csv", index=False)


def frame_5_smaller(frames: Path) -> None:
    """The store rewritten, consistently indexed, with frame 5 cut to 100x100 pixels."""
    table = pd.read_csv(frames / "bbaf2n.csv")
    stored = list(load_frames(frames, "bbaf2n", len(table))[0])
    with FrameWriter(frames / "bbaf2n", 95) as out:
        for row, rgb in zip(table.itertuples(), stored):
            out.add(rgb[:100, :100] if row.frame == 5 else rgb, row.source_frame, row.time)


def drop_offsets(frames: Path) -> None:
    pd.read_csv(frames / "bbaf2n.csv").drop(columns="offset").to_csv(frames / "bbaf2n.csv", index=False)


def garbled_listing(frames: Path) -> None:
    (frames / "videos.csv").write_bytes(b"\xff\xfename,domain\n")


@pytest.mark.parametrize("damage, message", [
    (cut_short, "bbaf2n.mjpeg: {half} bytes, but its frame table indexes {whole} (cut short?)"),
    (appended_to, "bbaf2n.mjpeg: {grown} bytes, but its frame table indexes {whole} (more after the last frame: "
                  "appended to?)"),
    (blank_frame_5, "bbaf2n.mjpeg: frame 5 is not a readable JPEG image"),
    (zero_bytes_row_3, "bbaf2n.csv: row 3: offset {offset3}, bytes 0 do not follow the previous frame "
                       "(the JPEGs lie back to back, each at least 1 byte)"),
    (frame_5_smaller, "bbaf2n.mjpeg: frame 5 is [50, 50, 3], frame 0 [144, 180, 3] (decoded at 1/2 size)"),
    (drop_offsets, "bbaf2n.csv: unreadable ('offset')"),
    (lambda frames: (frames / "bbaf2n.mjpeg").unlink(), "bbaf2n.mjpeg: not found (the extract_frames stage writes it)"),
    (garbled_listing, "videos.csv: not a readable CSV table ('utf-8' codec can't decode byte 0xff in position 0: "
                      "invalid start byte)"),
], ids=["store cut short", "store appended to", "a frame overwritten", "an empty frame", "a frame of another size",
        "table without offsets", "store missing", "video list garbled"])
def test_a_damaged_frame_store_is_a_one_line_error(tmp_path, samples, damage, message):
    videos = [{"name": "bbaf2n", "domain": "A", "path": samples / "A" / "bbaf2n.mpg", "split": "train", "limit": 12},
              {"name": "brbk7n", "domain": "B", "path": samples / "B" / "brbk7n.mpg", "split": "train", "limit": 12}]
    frames = write_frames(tmp_path / "frames", videos)
    whole = (frames / "bbaf2n.mjpeg").stat().st_size
    offset3 = pd.read_csv(frames / "bbaf2n.csv")["offset"][3]
    damage(frames)
    result = run_crop(tmp_path, videos, write=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"crop_faces: error: {frames}/" + message.format(half=whole // 2, grown=whole + 10, whole=whole, offset3=offset3))
    assert not (tmp_path / "faces").exists()


def test_crop_array_writer_writes_what_np_save_writes_and_counts_its_crops(tmp_path, samples):
    """crop_faces and infer append crops to their .npy files front to back; the file must be the
    one np.save would write (any .npy reader opens it), and a short or overfull one is an error."""
    crops = crop(decode(samples / "A" / "bbaf2n.mpg", 7), 48)
    with CropArrayWriter(tmp_path / "crops.npy", 7, 48) as out:
        out.append(crops[:3])
        out.append(crops[3:])
    np.save(tmp_path / "saved.npy", crops)
    assert (tmp_path / "crops.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    with pytest.raises(ValueError, match="6 of 7 crops written"):
        with CropArrayWriter(tmp_path / "short.npy", 7, 48) as out:
            out.append(crops[:6])
    with pytest.raises(ValueError, match="cannot add"):
        with CropArrayWriter(tmp_path / "full.npy", 7, 48) as out:
            out.append(crops)
            out.append(crops[:1])
