"""Train/test split of video frames: whole clips, or contiguous time segments, never random frames.

Neighbouring frames are near-duplicates, so a random frame split would put copies of the test
frames into training. A video with its own split (videos.csv) goes whole to that side; a video
without one gives one contiguous test segment of `test_share` of its frames, placed at a seeded
random position, and the rest (before and after it) to training.

No gap frames are left out at the segment boundaries: at most two boundaries per video leak a
fraction of a second of near-duplicates, and the Recycle-GAN triplets cannot straddle a boundary
because train and test frames land in different crop arrays.
"""
from __future__ import annotations

import zlib
from typing import Optional

import numpy as np


def held_out_segment(name: str, n_frames: int, test_share: float, seed: int) -> tuple[int, int]:
    """Frames [start, stop) of the test segment of video `name`.

    The random position depends only on `seed` and the video's name, so adding or reordering
    videos does not move the split of the others.
    """
    length = int(round(n_frames * test_share))
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    start = int(rng.integers(0, n_frames - length + 1))
    return start, start + length


def frame_splits(name: str, n_frames: int, split: Optional[str], test_share: float, seed: int) -> np.ndarray:
    """"train" or "test" for each frame of a video: all `split` when given, else a contiguous test segment."""
    if split is not None:
        return np.full(n_frames, split, dtype=object)
    labels = np.full(n_frames, "train", dtype=object)
    start, stop = held_out_segment(name, n_frames, test_share, seed)
    labels[start:stop] = "test"
    return labels
