"""Runs of consecutive frames of one shot: what the temporal losses, the stabiliser, the flicker
metrics and the mask smoothing may treat as motion (a cut, a gap in the face track or another
video breaks a run)."""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np


def continues(frame: np.ndarray, shot: np.ndarray, gap: int = 1, video: Optional[np.ndarray] = None) -> np.ndarray:
    """bool [n - gap]: row i + gap is frame + gap of the same shot (and video, when given) as row i."""
    frame, shot = np.asarray(frame), np.asarray(shot)
    if len(frame) <= gap:
        return np.zeros(0, bool)
    same = (frame[gap:] - frame[:-gap] == gap) & (shot[gap:] == shot[:-gap])
    return same if video is None else same & (np.asarray(video)[gap:] == np.asarray(video)[:-gap])


def follows(previous: Optional[tuple[int, int]], shot: int, frame: int) -> bool:
    """Whether (shot, frame) continues the run whose last row was `previous` (its shot and frame; None: no run)."""
    return previous is not None and (shot, frame) == (previous[0], previous[1] + 1)


def consecutive_pairs(frame: np.ndarray, shot: np.ndarray, gap: int = 1) -> np.ndarray:
    """Indices i such that rows i..i+gap are consecutive frames of the same shot."""
    return np.flatnonzero(continues(frame, shot, gap))


def segments(frame: np.ndarray, shot: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, stop) row ranges of the runs of consecutive frames of one shot."""
    breaks = np.flatnonzero(~continues(frame, shot)) + 1
    bounds = [0, *breaks.tolist(), len(frame)]
    yield from ((a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a)
