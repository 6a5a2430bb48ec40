"""The 68 landmarks crop_faces stores for the test faces, and the face mask drawn from them, on real clips:
where they are, how steady the mask is, and that hard clips (cuts, a black frame, a hand over the face)
merge without the mask leaving the tracked face."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.real_frames import write_frames
from helpers.repo import shipped_params

from pipeline.data.crop_faces import crop_faces
from pipeline.face.geometry import crop_window
from pipeline.face.landmarks import predict_landmarks
from pipeline.face.mask import face_size, hull_mask, mask_iou
from pipeline.store.faces import LANDMARKS, load_landmarks, read_boxes
from pipeline.store.frames import load_frames
from pipeline.translate.merge_video import merge_test_videos, merged_frames


def hull(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The face outline's hull over a whole frame of `shape` (height, width)."""
    return hull_mask(points, (0, 0), max(shape))[:shape[0], :shape[1]]


def shot_ious(rows: pd.DataFrame, landmarks: np.ndarray, shape: tuple[int, int]) -> list[float]:
    """IoU of the hulls of consecutive face frames of one shot."""
    masks = [hull(points, shape) if face else None for points, face in zip(landmarks, rows["face"])]
    shots = rows["shot"].to_numpy()
    return [mask_iou(masks[i - 1], masks[i]) for i in range(1, len(rows))
            if masks[i - 1] is not None and masks[i] is not None and shots[i - 1] == shots[i]]


def test_crop_faces_stores_landmarks_of_the_test_faces(stage_inputs):
    boxes = pd.read_csv(stage_inputs["faces"] / "boxes.csv")
    stored = np.load(stage_inputs["faces"] / LANDMARKS)
    assert stored.dtype == np.float32 and stored.shape == (len(boxes), 68, 2)
    wanted = (boxes["split"] == "test") & boxes["face"]
    assert np.isfinite(stored[wanted.to_numpy()]).all() and np.isnan(stored[~wanted.to_numpy()]).all()
    rows = read_boxes(stage_inputs["faces"], "test")
    rows = rows[rows["face"]]
    for row, points in zip(rows.itertuples(), load_landmarks(stage_inputs["faces"], rows)):
        x0, y0, side = crop_window(row.cx, row.cy, row.size)
        assert (points >= (x0, y0)).all() and (points < (x0 + side, y0 + side)).all()
        eyes, mouth, chin = points[36:48, 1].mean(), points[48:68, 1].mean(), points[8, 1]
        assert eyes < mouth < chin  # a face the right way up
        assert 0.3 * side < face_size(points) < 0.8 * side  # the face, inside the margin of the crop box


def test_face_mask_is_steady_within_a_shot(stage_inputs):
    """GRID: mean frame-to-frame IoU of the face hull >= 0.95 with the stored (smoothed) landmarks, and
    steadier than the landmarks predicted frame by frame."""
    rows = read_boxes(stage_inputs["faces"], "test")
    rows = rows[rows["video"] == "sbat6n"]
    frames, _ = load_frames(stage_inputs["frames"], "sbat6n", len(rows))
    shape = frames.shape[1:3]
    smoothed = load_landmarks(stage_inputs["faces"], rows)
    raw = np.stack([predict_landmarks(frame, row.cx, row.cy, row.size, 0.4)
                    for row, frame in zip(rows.itertuples(), frames.iter_at(rows["frame"]))])
    steady, jumpy = np.mean(shot_ious(rows, smoothed, shape)), np.mean(shot_ious(rows, raw, shape))
    print(f"sbat6n face-mask IoU frame to frame: smoothed {steady:.4f}, raw {jumpy:.4f}")
    assert steady >= 0.95 and steady > jumpy


@pytest.fixture(scope="module")
def hard_clips(robustness, samples, tmp_path_factory):
    """crop_faces on Megamind.avi (cuts at 98, 154, 200, black frame 0, several faces) and the first
    seconds of woman_occlusion_pexels.mp4 (a hand over the face), both as test videos."""
    root = tmp_path_factory.mktemp("hard_clips")
    videos = [{"name": "megamind", "domain": "A", "split": "test", "path": robustness / "Megamind.avi"},
              {"name": "occlusion", "domain": "B", "split": "test", "path": robustness / "woman_occlusion_pexels.mp4",
               "limit": 240},
              {"name": "bbaf2n", "domain": "A", "split": "train", "path": samples / "A" / "bbaf2n.mpg", "limit": 6},
              {"name": "brbk7n", "domain": "B", "split": "train", "path": samples / "B" / "brbk7n.mpg", "limit": 6}]
    (root / "raw").mkdir()
    for video in videos:
        (root / "raw" / Path(video["path"]).name).symlink_to(video["path"])
    frames = write_frames(root / "frames", videos)
    crop_faces(frames, root / "faces", shipped_params("data", load_size=72))
    return root


@pytest.mark.parametrize("video", ["megamind", "occlusion"])
def test_mask_stays_on_the_tracked_face(hard_clips, video):
    rows = read_boxes(hard_clips / "faces", "test")
    rows = rows[rows["video"] == video]
    frames, _ = load_frames(hard_clips / "frames", video, len(rows))
    landmarks = load_landmarks(hard_clips / "faces", rows)
    assert rows["face"].sum() > 0.3 * len(rows)
    for row, points in zip(rows[rows["face"]].itertuples(), landmarks[rows["face"].to_numpy()]):
        x0, y0, side = crop_window(row.cx, row.cy, row.size)
        centre = points.mean(axis=0)
        assert (abs(centre - (row.cx, row.cy)) < side / 4).all()  # on the tracked face of this frame
    ious = shot_ious(rows, landmarks, frames.shape[1:3])
    print(f"{video}: face-mask IoU frame to frame within shots: mean {np.mean(ious):.4f}, min {min(ious):.4f}")
    assert min(ious) > 0.5  # never jumps to another object


@pytest.mark.slow
def test_hard_clips_merge_and_faceless_frames_pass_through(hard_clips, tmp_path):
    """The stage's work on both clips; frames without a face (Megamind's black first frame) are the source."""
    rows = read_boxes(hard_clips / "faces", "test")
    translated = tmp_path / "translated" / "cyclegan"
    translated.mkdir(parents=True)
    for domain, video in (("A", "megamind"), ("B", "occlusion")):
        crops = np.load(hard_clips / "faces" / f"{domain}_test.npy")
        np.save(translated / f"{video}.npy", crops[:, ::-1])  # upside down: every pasted face changes
    params = shipped_params("merge", crf=30, sheet_frames=1)
    assert merge_test_videos(hard_clips / "frames", hard_clips / "faces", hard_clips / "raw", [translated],
                             tmp_path / "results", params) == ["megamind", "occlusion"]
    changed = pd.read_csv(tmp_path / "results" / "changed.csv").set_index("video")
    assert (changed["changed_share"] > 0).all() and (changed["changed_max"] < 0.5).all()
    megamind = rows[rows["video"] == "megamind"]
    assert not megamind["face"].iloc[0]
    frames, _ = load_frames(hard_clips / "frames", "megamind", len(megamind))
    merged = merged_frames(frames.iter_at(megamind["frame"]), megamind, np.load(translated / "megamind.npy"),
                           np.load(hard_clips / "faces" / "A_test.npy"), load_landmarks(hard_clips / "faces", megamind),
                           params)
    for out, frame, face in zip(merged, frames, megamind["face"]):
        if not face:
            np.testing.assert_array_equal(out, frame)
