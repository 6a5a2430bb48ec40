"""Face boxes of a video (pipeline.face.geometry cuts the square crops from them).

Per video: scene cuts from HSV-histogram distances of consecutive frames; per shot, dlib's HOG
detector on every `detect_every`-th frame (it costs ~13 ms on a 360x288 frame, the rest of the
stage ~2 ms), detections linked into tracks and the main face kept (the track with the largest
sum of box sizes: present longest and largest, so a passer-by or a false hit never wins);
frames where the main track appears or vanishes between two detector runs are detected one by
one so its ends are exact; gaps of up to MAX_GAP_SECONDS are bridged by linear interpolation
(occlusion, blinks of the detector), longer ones mean no face; the box is smoothed over time
within each run of face frames, never across a cut. Which shots' faces belong to the video's one
person is for the caller to decide (`keep_shots`; the crop stage asks pipeline.face.identity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.face.dlib_models import face_detector

CUT_THRESHOLD = 0.2  # Bhattacharyya distance; measured: cuts 0.27-0.96, motion within a shot <= 0.09
HISTOGRAM_SIDE = 128  # the histograms sample frames at 128-255 px along their long side
DETECT_MAX_SIDE = 480  # frames are shrunk to this long side for the detector (dlib finds faces >= ~80 px)
LINK_DISTANCE = 0.5  # a detection continues a track if its centre is this share of the box size away or less
LINK_SIZE_RATIO = 1.5  # ... and its size differs by this factor or less
MAX_GAP_SECONDS = 0.5  # longer detector gaps inside a shot are frames without a face
CENTRE_SMOOTH_SECONDS = 0.1  # sigma of the Gaussian that smooths the box centre over time
SIZE_SMOOTH_SECONDS = 0.5  # ... and the size: dlib's sizes come in pyramid steps of 1.2, real zooms are slow

Track = dict[int, np.ndarray]  # detector boxes {frame: (x0, y0, x1, y1)} of one face
ShotFilter = Callable[[Sequence[np.ndarray], list[Track]], list[bool]]  # (frames, one track per shot) -> keep each


def histogram(frame: np.ndarray) -> np.ndarray:
    """HSV colour histogram (16 hue x 4 saturation x 4 value bins, sums to 1) of a subsample of the frame."""
    step = max(1, max(frame.shape[:2]) // HISTOGRAM_SIDE)  # every step-th pixel: far cheaper than resizing
    hsv = cv2.cvtColor(np.ascontiguousarray(frame[::step, ::step]), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, None, norm_type=cv2.NORM_L1).ravel()


def shot_ids(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Shot number of every frame: a shot starts where the histogram distance to the previous frame > CUT_THRESHOLD."""
    shots = np.zeros(len(frames), dtype=np.int64)
    previous = None
    for i, frame in enumerate(frames):
        current = histogram(np.asarray(frame))
        cut = previous is not None and cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA) > CUT_THRESHOLD
        shots[i] = shots[i - 1] + cut if i else 0
        previous = current
    return shots


def scene_cuts(shots: np.ndarray) -> list[int]:
    """Frames that start a new shot (the first frame of the video excluded)."""
    return [int(i) for i in np.flatnonzero(np.diff(shots)) + 1]


class FaceDetector:
    """dlib's HOG frontal face detector on a copy of the frame shrunk to `max_side`; counts its runs."""

    def __init__(self, max_side: int = DETECT_MAX_SIDE) -> None:
        self.max_side = max_side
        self.runs = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Boxes `[k, 4]` (x0, y0, x1, y1) in the frame's pixels, largest first."""
        self.runs += 1
        scale = min(1.0, self.max_side / max(frame.shape[:2]))
        image = np.ascontiguousarray(frame)
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rects = face_detector()(image, 0)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float64)
        boxes = boxes.reshape(-1, 4) / scale
        return boxes[np.argsort(-(boxes[:, 2] - boxes[:, 0]), kind="stable")]


def centre_size(box: np.ndarray) -> np.ndarray:
    """(cx, cy, size) of a detector box (x0, y0, x1, y1); size is the mean of width and height."""
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0 + y1 - y0) / 2])


def centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance in pixels between the centres of two detector boxes."""
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)


def continues(previous: np.ndarray, box: np.ndarray) -> bool:
    """Whether detector box `box` can be the same face as detector box `previous` (near, similar size)."""
    size = centre_size(previous)[2]
    ratio = centre_size(box)[2] / size
    return centre_distance(previous, box) <= LINK_DISTANCE * size and max(ratio, 1 / ratio) <= LINK_SIZE_RATIO


def link_tracks(detections: dict[int, np.ndarray]) -> list[Track]:
    """Group the detections of one shot ({frame: boxes}) into tracks ({frame: box}), greedily in frame order."""
    tracks: list[Track] = []
    for frame in sorted(detections):
        free = list(range(len(tracks)))
        for box in detections[frame]:
            ends = [t for t in free if continues(tracks[t][max(tracks[t])], box)]
            if ends:
                best = min(ends, key=lambda t: centre_distance(tracks[t][max(tracks[t])], box))
                tracks[best][frame] = box
                free.remove(best)
            else:
                tracks.append({frame: box})
    return tracks


def main_track(frames: Sequence[np.ndarray], start: int, stop: int, detect: FaceDetector,
               detect_every: int) -> Track:
    """Detector boxes {frame: box} of the main face in shot [start, stop), ends refined frame by frame."""
    keys = sorted(set(range(start, stop, detect_every)) | {stop - 1})
    detections = {k: detect(np.asarray(frames[k])) for k in keys}
    tracks = link_tracks(detections)
    if not tracks:
        return {}
    main = max(tracks, key=lambda t: sum(centre_size(b)[2] for b in t.values()))
    for a, b in zip(keys, keys[1:]):
        if (a in main) == (b in main):
            continue
        for frame in range(a + 1, b):  # the track starts or ends in here: find where
            anchor = main[min(main, key=lambda k: abs(k - frame))]
            near = [box for box in detect(np.asarray(frames[frame])) if continues(anchor, box)]
            if near:
                main[frame] = min(near, key=lambda box: centre_distance(anchor, box))
    return dict(sorted(main.items()))


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth the rows of `values` [n, d] with a Gaussian of `sigma` rows, edges padded with their end values."""
    radius = int(math.ceil(3 * sigma))
    if radius == 0 or len(values) < 2:
        return values.copy()
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(values.shape[1])], axis=1)


def smooth_runs(values: np.ndarray, shots: np.ndarray, sigma: float) -> np.ndarray:
    """`values` [n, ...] of consecutive frames, smoothed over time with a Gaussian of `sigma` frames
    within each run of frames that have values (no NaN) in one shot: never across a cut or a gap."""
    present = ~np.isnan(values.reshape(len(values), -1)).any(axis=1)
    smooth = np.full(values.shape, np.nan)
    run_id = np.cumsum(np.r_[True, (np.diff(shots) != 0) | (np.diff(present) != 0)])
    for run in np.unique(run_id[present]):
        rows = run_id == run
        smooth[rows] = gaussian_smooth(values[rows].reshape(rows.sum(), -1), sigma).reshape(values[rows].shape)
    return smooth


def interpolate(track: Track, n_frames: int, max_gap: int) -> np.ndarray:
    """(cx, cy, size) per frame [n, 3] from detector boxes {frame: box}: gaps of up to `max_gap`
    frames between two detections linearly interpolated, longer gaps and the frames outside NaN."""
    raw = np.full((n_frames, 3), np.nan)
    for frame, box in track.items():
        raw[frame] = centre_size(box)
    keys = sorted(track)
    for a, b in zip(keys, keys[1:]):
        if 1 < b - a <= max_gap + 1:
            w = (np.arange(a + 1, b) - a)[:, None] / (b - a)
            raw[a + 1:b] = (1 - w) * raw[a] + w * raw[b]
    return raw


@dataclass
class VideoBoxes:
    """Per-frame face boxes of one video: `table` has frame, shot, face, cx, cy, size (smoothed face box,
    no margin), raw_cx, raw_cy, raw_size (interpolated detections) and det_x0..det_y1 (detector output);
    `dropped_shots`: shots whose face `keep_shots` turned down."""

    table: pd.DataFrame
    detector_runs: int
    dropped_shots: int = 0


def track_faces(frames: Sequence[np.ndarray], fps: float, detect_every: int, detect: FaceDetector | None = None,
                keep_shots: ShotFilter | None = None, bar: tqdm | None = None, shots: np.ndarray | None = None
                ) -> VideoBoxes:
    """Find one main face per shot in `frames` (array-like of HxWx3 RGB) and its smoothed box in every
    frame; shots whose face `keep_shots` turns down count as frames without a face. `bar` advances by
    each shot's frames as its detection ends. `shots`: each frame's shot, if known (else shot_ids)."""
    n = len(frames)
    shots = shot_ids(frames) if shots is None else shots
    detect = detect or FaceDetector()
    runs_before = detect.runs
    max_gap = max(detect_every - 1, round(MAX_GAP_SECONDS * fps))
    det = np.full((n, 4), np.nan)
    raw = np.full((n, 3), np.nan)
    starts = [0, *scene_cuts(shots)]
    spans = list(zip(starts, [*starts[1:], n]))
    tracks = []
    for start, stop in spans:
        tracks.append(main_track(frames, start, stop, detect, detect_every))
        if bar is not None:
            bar.update(stop - start)
    keep = keep_shots(frames, tracks) if keep_shots else [True] * len(tracks)
    for (start, stop), track, kept in zip(spans, tracks, keep):
        if not kept:
            continue
        for frame, box in track.items():
            det[frame] = box
        raw[start:stop] = interpolate(track, n, max_gap)[start:stop]
    face = ~np.isnan(raw[:, 0])
    smooth = np.concatenate([smooth_runs(raw[:, :2], shots, CENTRE_SMOOTH_SECONDS * fps),
                             smooth_runs(raw[:, 2:], shots, SIZE_SMOOTH_SECONDS * fps)], axis=1)
    table = pd.DataFrame({
        "frame": np.arange(n), "shot": shots, "face": face,
        "cx": smooth[:, 0], "cy": smooth[:, 1], "size": smooth[:, 2],
        "raw_cx": raw[:, 0], "raw_cy": raw[:, 1], "raw_size": raw[:, 2],
        "det_x0": det[:, 0], "det_y0": det[:, 1], "det_x1": det[:, 2], "det_y1": det[:, 3],
    })
    return VideoBoxes(table, detect.runs - runs_before, sum(1 for t, k in zip(tracks, keep) if t and not k))


def jitter(table: pd.DataFrame, prefix: str = "", by: Sequence[str] = ("shot",)) -> float:
    """Mean frame-to-frame shift of the box centre as a share of box size, over consecutive face frames of one shot.

    `table` rows are in frame order within each group of `by`; `prefix` "raw_" measures the unsmoothed boxes.
    """
    groups = table.groupby(list(by), sort=False)
    shift = np.hypot(groups[f"{prefix}cx"].diff(), groups[f"{prefix}cy"].diff()) / table[f"{prefix}size"]
    return float(shift.mean())  # NaN (no face, first frame of a shot) is skipped
