"""Decoding real clips in the tests.

`decode` reads with the pipeline's own sequential reader (pipeline.store.video), to make test inputs
from real footage. `opencv_frames` (OpenCV's own FFmpeg build) and `pyav_frames` (PyAV's decoder
without the reader's rotation and frame selection) are the references the reader and the H.264
writer are checked against.
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np

from pipeline.store.video import iter_frames


def decode(path: Path, limit: Optional[int] = None, region: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
    """The first `limit` frames of a video (all by default), uint8 [N, H, W, 3], cut to region (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = region or (None, None, None, None)
    return np.stack([rgb[y0:y1, x0:x1].copy() for _, _, rgb in islice(iter_frames(path), limit)])


def opencv_frames(path: Path) -> np.ndarray:
    """Every frame of a clip, RGB, from OpenCV's video reader (FFmpeg built into opencv-python, not PyAV's)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while (bgr := capture.read()[1]) is not None:
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def pyav_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video's first video stream, decoded in order by PyAV (libav)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
