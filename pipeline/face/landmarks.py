"""68 facial landmarks of the faces merge_video pastes into, found once by crop_faces.

dlib's 68-point shape predictor (Kazemi and Sullivan, CVPR 2014; the iBUG 300-W model shipped in
face_recognition_models, offline) is given the tracked, smoothed face box of each frame rather
than a new detection, so the points follow the main face the box follows and cannot jump to
another face or object. The points are then smoothed over time like the box centre, within each
run of frames of one shot (never across a cut), so the mask drawn from them does not jitter.
Only test frames get landmarks: they are the only frames that are merged, and the predictor's
time per face is of the order of the rest of the crop stage's time per frame (docs/merge.md).
"""
from __future__ import annotations

import numpy as np

from pipeline.face.dlib_models import face_rectangle, landmark_model
from pipeline.face.tracking import CENTRE_SMOOTH_SECONDS, smooth_runs

POINTS = 68


def predict_landmarks(frame: np.ndarray, cx: float, cy: float, size: float, margin: float) -> np.ndarray:
    """float [68, 2] (x, y) landmarks in frame pixels of the face in crop box (cx, cy, size) of a uint8 RGB frame."""
    shape = landmark_model()(np.ascontiguousarray(frame), face_rectangle(cx, cy, size, margin))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def smooth_landmarks(points: np.ndarray, shots: np.ndarray, fps: float) -> np.ndarray:
    """Landmarks [n, 68, 2] of a video's consecutive frames (NaN where none) smoothed over time
    with the box centre's Gaussian, within each run of one shot."""
    return smooth_runs(points, shots, CENTRE_SMOOTH_SECONDS * fps)
