"""Does the output move as the input does? Mouth opening and eye blinks from dlib's 68 landmarks.

Warping error and tOF reward an output that moves *less* than its input: a face frozen in every
frame scores better than the input itself. A talking head's motion that matters most is the
mouth, so each crop (input and output alike, at one size, with one face rectangle) gets dlib's
68 landmarks (iBUG 300-W layout), from which

- mouth opening: mean gap between the inner lips (points 61-67, 62-66, 63-65) over the distance
  between the eye centres, and
- eye opening: the eye aspect ratio (Soukupova and Cech, CVWW 2016), mean of both eyes.

dlib's shape predictor is a cascade started from a mean shape in the face rectangle, so on a
small crop its lip points jitter by a pixel or two with the rectangle and the image's side:
noise that lowers every row's correlation and can reorder rows that lie close. Each crop's
openings are therefore the mean over 10 fits: the crop and its mirror image, each with the
rectangle in place and moved by 1.5% of its side up, down, left and right (the openings are
mirror-symmetric, so a mirrored fit needs no renumbering of its points).

The figure of a row is the Pearson correlation over time between the output's and the input's
series, per shot, averaged over shots weighted by their frames: 1 when the output opens its mouth
as the input does, ~0 for a frozen face (a series that never changes correlates 0 by definition).
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.forkserver
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dlib
import numpy as np
from tqdm import tqdm

from pipeline.face.dlib_models import landmark_model
from pipeline.face.geometry import resize_square

MIN_FRAMES = 10  # a shot shorter than this says little about motion and is left out
_INNER_LIPS = ((61, 67), (62, 66), (63, 65))
_EYES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))  # corner, top, top, corner, bottom, bottom
SHIFT = 0.015  # the face rectangle's moves, share of the face size
CHUNK = 16  # crops per task of a worker (short videos still spread over the cores)


def _distance(points: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(points[a] - points[b]))


def openings(points: np.ndarray) -> tuple[float, float]:
    """(mouth opening, eye opening) of one face's 68 landmarks [68, 2]."""
    eyes = [points[list(eye)].mean(axis=0) for eye in _EYES]
    between_eyes = float(np.linalg.norm(eyes[0] - eyes[1]))
    mouth = np.mean([_distance(points, a, b) for a, b in _INNER_LIPS]) / between_eyes
    ratio = [(_distance(points, e[1], e[5]) + _distance(points, e[2], e[4])) / (2 * _distance(points, e[0], e[3]))
             for e in _EYES]
    return float(mouth), float(np.mean(ratio))


class FaceMotion:
    """Mouth and eye opening of face crops: resized to `face_size`, 68 landmarks in the fixed face
    rectangle `rect` (where crop_faces put the detector's box), so input and output are measured
    the same way and no frame is lost to a failed detection; each crop's openings are the mean of
    ten fits (the crop at the five rectangles of `rects`, its mirror at those of `mirrored`).

    dlib's shape predictor holds the GIL, so threads would run its fits one at a time: the crops
    go to one worker process per core instead (docs/measurements/speed.md), in chunks, each
    crop's figures computed as in this process."""

    def __init__(self, face_size: int, rect: dlib.rectangle):
        self.face_size = face_size
        self.rect = (rect.left(), rect.top(), rect.right(), rect.bottom())
        step = max(1, round(SHIFT * face_size))
        moves = ((0, 0), (-step, 0), (step, 0), (0, -step), (0, step))
        self.rects = [dlib.rectangle(rect.left() + x, rect.top() + y, rect.right() + x, rect.bottom() + y)
                      for x, y in moves]
        last = face_size - 1
        self.mirrored = [dlib.rectangle(last - r.right(), r.top(), last - r.left(), r.bottom()) for r in self.rects]

    def _openings(self, image: np.ndarray) -> np.ndarray:
        """(mouth, eye) opening of one face image, the mean over its fits."""
        mirror = np.ascontiguousarray(image[:, ::-1])
        fits = [(image, r) for r in self.rects] + [(mirror, r) for r in self.mirrored]
        predictor = landmark_model()  # loaded where the fits run: a worker's server, or here without workers
        return np.mean([openings(np.array([(p.x, p.y) for p in predictor(im, r).parts()], np.float64))
                        for im, r in fits], axis=0)

    def series(self, crops: np.ndarray) -> np.ndarray:
        """[N, 2] (mouth opening, eye opening) of uint8 RGB crops [N, H, W, 3], in this process."""
        return np.array([self._openings(resize_square(np.ascontiguousarray(crop), self.face_size))
                         for crop in crops]).reshape(len(crops), 2)

    def __call__(self, crops: np.ndarray, desc: str = "landmarks") -> np.ndarray:
        """[N, 2] (mouth opening, eye opening) of uint8 RGB crops [N, H, W, 3], over the workers."""
        chunks = [crops[start:start + CHUNK] for start in range(0, len(crops), CHUNK)]
        pool = _workers()
        done = pool.map(functools.partial(_series_in_worker, self.face_size, self.rect), chunks) if pool else \
            map(self.series, chunks)
        series = np.empty((len(crops), 2))
        with tqdm(total=len(crops), desc=desc, unit="face", leave=False) as bar:
            start = 0
            for part in done:
                series[start:start + len(part)] = part
                start += len(part)
                bar.update(len(part))
        return series


@functools.cache
def _workers() -> ProcessPoolExecutor | None:
    """One process per core, or none on one core. They are forked from a fresh server process that
    loaded the model (forking this process, which runs threads, may deadlock), so they share it."""
    count = len(os.sched_getaffinity(0))
    if count < 2:
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.evaluate.landmarks_loaded"])
    # The server imports that module with the folder it starts in first on its path (Python 3.11):
    # it starts beside the `pipeline` package this process runs, so both run the same code.
    with contextlib.chdir(Path(__file__).resolve().parents[2]):
        multiprocessing.forkserver.ensure_running()
    return ProcessPoolExecutor(count, mp_context=context)


@functools.cache
def _motion_of(face_size: int, rect: tuple[int, int, int, int]) -> FaceMotion:
    return FaceMotion(face_size, dlib.rectangle(*rect))


def _series_in_worker(face_size: int, rect: tuple[int, int, int, int], crops: np.ndarray) -> np.ndarray:
    """FaceMotion.series in a worker process, its FaceMotion (and the predictor) built once there."""
    return _motion_of(face_size, rect).series(crops)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two series; 0 when either never changes."""
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a ** 2).sum() * (b ** 2).sum())
    return float((a * b).sum() / scale) if scale > 1e-12 else 0.0


def motion_fidelity(output: np.ndarray, source: np.ndarray, shot: np.ndarray) -> np.ndarray:
    """[2] correlation of the output's (mouth, eye) series [N, 2] with the input's `source` [N, 2],
    per shot of at least MIN_FRAMES frames, averaged over them weighted by frames (NaN if none)."""
    shot = np.asarray(shot)
    scores, weights = [], []
    for value in np.unique(shot):
        rows = shot == value
        if rows.sum() >= MIN_FRAMES:
            scores.append([correlation(output[rows, j], source[rows, j]) for j in range(output.shape[1])])
            weights.append(rows.sum())
    if not scores:
        return np.full(output.shape[1], np.nan)
    return np.average(np.array(scores), axis=0, weights=weights)
