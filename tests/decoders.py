"""Decoding real clips in the tests.

`decode` reads with the pipeline's own sequential reader (pipeline.video), to make test inputs
from real footage. `decord_batch` and `pyav_frames` are independent decoders that the reader and
the H.264 writer are checked against.
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Optional

import av
import numpy as np

from pipeline.video import VideoReader, cpu, iter_frames  # decord's reader, loaded after OpenCV (pipeline.video)


def decode(path: Path, limit: Optional[int] = None, region: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
    """The first `limit` frames of a video (all by default), uint8 [N, H, W, 3], cut to region (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = region or (None, None, None, None)
    return np.stack([rgb[y0:y1, x0:x1].copy() for _, _, rgb in islice(iter_frames(path), limit)])


def decord_batch(path: Path) -> np.ndarray:
    """Every frame of a clip from decord's batch decoder (a code path pipeline.video does not use)."""
    reader = VideoReader(str(path), ctx=cpu(0))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def pyav_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video's first video stream, decoded in order by PyAV (libav)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
