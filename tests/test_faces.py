"""Face tracking on real video: scene cuts, one main face, exact track ends, smoothing, crop geometry."""
import cv2
import numpy as np
import pytest
from helpers.decoders import decode

from pipeline.face.geometry import crop_square, crop_window
from pipeline.face.tracking import (
    FaceDetector,
    centre_size,
    interpolate,
    jitter,
    link_tracks,
    main_track,
    scene_cuts,
    shot_ids,
    track_faces,
)

MEGAMIND_FPS = 23.976


@pytest.fixture(scope="module")
def megamind(robustness):
    return decode(robustness / "Megamind.avi")


@pytest.fixture(scope="module")
def occlusion(robustness):
    """The first 300 frames: the hand covers mouth, nose or cheek from about frame 60 to 240."""
    return decode(robustness / "woman_occlusion_pexels.mp4", limit=300)


@pytest.fixture(scope="module")
def grid(samples):
    return decode(samples / "A" / "bbaf2n.mpg")


def test_megamind_cuts_and_black_first_frame(megamind):
    boxes = track_faces(megamind, MEGAMIND_FPS, detect_every=5).table
    assert scene_cuts(boxes["shot"].to_numpy()) == [1, 98, 154, 200]  # frame 0 is black: a shot of its own
    assert not boxes["face"][0] and np.isnan(boxes["cx"][0])
    assert boxes["face"][1:].mean() > 0.95
    steps = np.hypot(np.diff(boxes["cx"]), np.diff(boxes["cy"])) / boxes["size"][1:]
    within_shot = np.diff(boxes["shot"]) == 0
    assert np.nanmax(steps[within_shot]) < 0.1  # the box moves smoothly inside every shot, jumps only at cuts
    assert np.nanmax(steps[~within_shot]) > 0.3


def test_no_cuts_in_single_shot_videos(occlusion, grid):
    assert scene_cuts(shot_ids(occlusion)) == []
    assert scene_cuts(shot_ids(grid)) == []


def test_main_face_is_the_foreground_woman_not_the_man_behind(megamind):
    # At full resolution dlib also finds the small face of a man in the background of shot 1 (frames 1-97).
    detect = FaceDetector(max_side=720)
    detections = {k: detect(megamind[k]) for k in range(1, 98, 5)}
    tracks = link_tracks(detections)
    assert len(tracks) >= 2
    main = main_track(megamind, 1, 98, detect, detect_every=5)
    main_sizes = [centre_size(box)[2] for box in main.values()]
    other_sizes = [centre_size(box)[2] for track in tracks for box in track.values()
                   if not any(np.array_equal(box, b) for b in main.values())]
    assert other_sizes and max(other_sizes) < min(main_sizes)
    assert len(main) >= 19  # present in (nearly) every detector run of the shot


def test_occluded_face_keeps_its_track(occlusion):
    sparse = track_faces(occlusion, 23.976, detect_every=5).table
    detect = FaceDetector()
    hand = range(60, 241)
    assert sparse["face"][hand].all()
    for frame in hand[::3]:  # the detector's own box on that frame: the crop stays on the face behind the hand
        (box,) = detect(occlusion[frame])
        cx, cy, size = centre_size(box)
        row = sparse.loc[frame]
        assert np.hypot(row.cx - cx, row.cy - cy) < 0.15 * size
        assert 0.75 < row["size"] / size < 1.33  # dlib's boxes come in pyramid steps of 1.2
    steps = np.hypot(np.diff(sparse["cx"]), np.diff(sparse["cy"])) / sparse["size"][1:]
    assert steps.max() < 0.05


def test_track_ends_are_exact_when_the_face_leaves_the_view(grid):
    # A window panning right across the GRID clip: the man's face slides out on the left.
    pan = np.stack([grid[i][:, int(i * 2.7):int(i * 2.7) + 160] for i in range(len(grid))])
    detect = FaceDetector()
    dense = np.array([len(detect(frame)) > 0 for frame in pan])
    assert dense.any() and not dense[-10:].any()
    sparse = track_faces(pan, 25.0, detect_every=10, detect=FaceDetector())
    first, last = np.flatnonzero(dense)[[0, -1]]
    face = sparse.table["face"].to_numpy()
    assert face[dense].all()
    assert not face[:first].any() and not face[last + 1:].any()
    assert sparse.detector_runs < len(pan) / 2


def test_smoothing_reduces_jitter(samples):
    frames = decode(samples / "A" / "lbax8n.mpg")  # he nods a little (in bbaf2n dlib's box never moves)
    boxes = track_faces(frames, 25.0, detect_every=1).table  # the detector on every frame: its own jitter
    assert jitter(boxes) < 0.5 * jitter(boxes, "raw_")


def test_interpolate_bridges_short_gaps_only():
    box = np.array([10.0, 20.0, 50.0, 60.0])
    track = {2: box, 5: box + 30, 20: box}
    raw = interpolate(track, 24, max_gap=4)
    assert np.isnan(raw[:2]).all() and np.isnan(raw[6:20]).all() and np.isnan(raw[21:]).all()
    np.testing.assert_allclose(raw[3:5, 0], [40.0, 50.0])  # centre x 30 -> 60 over frames 2..5
    np.testing.assert_allclose(raw[2:6, 2], 40.0)


@pytest.mark.parametrize("box", [(180.0, 150.0, 120.0), (20.5, 30.2, 150.0), (350.0, 280.0, 90.0),
                                 (-400.0, 100.0, 60.0), (180.0, 150.0, 700.0), (3.4, 2.6, 5.0)])
def test_crop_square_repeats_edges_outside_the_frame(grid, box):
    frame = grid[40]
    x0, y0, side = crop_window(*box)
    pad = side + 500
    padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    expected = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    expected = cv2.resize(expected, (64, 64), interpolation=cv2.INTER_AREA if side > 64 else cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crop_square(frame, *box, 64), expected)
