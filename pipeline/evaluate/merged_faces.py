"""The faces a viewer sees: the tracked crop square cut back out of the merged result videos.

merge_video writes one result frame per test row of boxes.csv (frame j of `results/<model>/<video>.mp4`
is the video's j-th test frame), so cutting each face row's crop window (pipeline.face.geometry) out of the
decoded result gives the translated face as it ended up in the video: after the mask, the blend,
the colour match and H.264. The metrics stage scores these cuts beside the model's own crops, and
cuts the source frames the same way for their reference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from pipeline.common.errors import FacecycleError
from pipeline.face.geometry import crop_square
from pipeline.store.tables import required
from pipeline.store.video import iter_frames, probe

CHUNK = 64  # faces cut and scored at a time: memory stays flat in a video's length


def result_frames(path: Path, rows: int) -> Iterator[np.ndarray]:
    """The frames of a merged result video, which must hold one frame per test row (`rows`)."""
    info = probe(required(path, "merge_video"))
    if info.frames != rows:
        raise FacecycleError(f"{path}: {info.frames} frames, but boxes.csv lists {rows} test frames for it")
    return (rgb for _, _, rgb in iter_frames(path, info=info))


def cut_faces(frames: Iterable[np.ndarray], rows: pd.DataFrame, sizes: Sequence[int]
              ) -> Iterator[list[np.ndarray]]:
    """For each row with a face, in order, its crop square cut from the row's frame at each of
    `sizes` px (`frames` holds one frame per row of `rows`, faces or not)."""
    for row, frame in zip(rows.itertuples(index=False), frames, strict=True):
        if row.face:
            yield [crop_square(frame, row.cx, row.cy, row.size, size) for size in sizes]


def in_chunks(faces: Iterator[list[np.ndarray]]) -> Iterator[list[np.ndarray]]:
    """The cuts of `cut_faces` stacked CHUNK faces at a time: one [n, size, size, 3] array per size."""
    chunk: list[list[np.ndarray]] = []
    for cuts in faces:
        chunk.append(cuts)
        if len(chunk) == CHUNK:
            yield [np.stack(c) for c in zip(*chunk)]
            chunk = []
    if chunk:
        yield [np.stack(c) for c in zip(*chunk)]
