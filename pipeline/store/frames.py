"""The frame store of extract_frames (docs/contracts.md), written there and read by crop_faces and
merge_video: videos.csv and, per video, its frames as one Motion-JPEG file indexed by a frame table.

JPEG because raw frames cost height x width x 3 bytes each: ten minutes of 1080p would be 110 GB,
and DVC's cache keeps a second copy. At quality 95 the sample clips shrink 13.7x, four larger
shared clips 15.1x (13-20x per clip), at 42-52 dB PSNR (less than their own codec lost), and a
frame decodes in 1-3 ms. One file per video because every DVC command costs ~4x more on a
20,000-file folder than on one packed file (measured: docs/data.md). The `.mjpeg` is the JPEG
images back to back (`ffplay -f mjpeg` plays it); the table's `offset` and `bytes` columns say
where each frame lies.
"""
from __future__ import annotations

import os
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.common.domains import DOMAINS
from pipeline.common.errors import FacecycleError
from pipeline.store.tables import read_table, required

_DECODE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}  # decode scale: OpenCV's flag
AHEAD = 2  # frames decoded ahead of the one being read, or encoded behind the one being added
DECODERS = 2  # threads decoding ahead when iterating (at 720p crop_faces waits on one)


class FrameWriter:
    """Writes one video's frames: RGB frames appended to `<stem>.mjpeg` as JPEG images of `quality`
    (1-100), and when the `with` block ends without error, the frame table `<stem>.csv`.

    Each frame is encoded on a worker thread while the caller decodes the next (OpenCV encodes
    without holding the GIL), at most AHEAD frames behind, written in order: the same bytes as
    encoding in turn."""

    def __init__(self, stem: Path, quality: int):
        self.path, self.table = Path(stem).with_suffix(".mjpeg"), Path(stem).with_suffix(".csv")
        self._options = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        self._rows = []
        self._pending = deque()  # (source_frame, time, future JPEG) in frame order

    def add(self, rgb: np.ndarray, source_frame: int, time: float) -> None:
        """Append frame `source_frame` of the raw video, shown at `time` seconds in it."""
        self._pending.append((source_frame, time, self._pool.submit(self._encode, rgb)))
        if len(self._pending) > AHEAD:
            self._write_oldest()

    def _encode(self, rgb: np.ndarray) -> np.ndarray:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self._options)
        if not ok:
            raise FacecycleError(f"{self.path}: JPEG encoding failed for a {list(rgb.shape)} frame")
        return jpeg

    def _write_oldest(self) -> None:
        source_frame, time, encoded = self._pending.popleft()
        jpeg = encoded.result()
        self._rows.append((len(self._rows), source_frame, time, self._file.tell(), jpeg.nbytes))
        self._file.write(jpeg.tobytes())

    def __enter__(self) -> "FrameWriter":
        self._file = open(self.path, "wb")
        self._pool = ThreadPoolExecutor(1)
        return self

    def __exit__(self, failed, *_) -> None:
        try:
            while self._pending and not failed:
                self._write_oldest()
        finally:
            self._pool.shutdown(cancel_futures=True)
            self._file.close()
        if not failed:
            pd.DataFrame(self._rows, columns=["frame", "source_frame", "time", "offset", "bytes"]).to_csv(
                self.table, index=False)


class Frames(Sequence):
    """One video's frames, each decoded from the `.mjpeg` when indexed: uint8 [H, W, 3] RGB.
    Array-like for the stages (len, [i], iteration, `shape`), with memory flat however long the video."""

    def __init__(self, path: Path, offsets: np.ndarray, sizes: np.ndarray, scale: int = 1):
        """`offsets` and `sizes` (bytes) of each frame's JPEG in `path`, consecutive (load_frames checks),
        decoded at 1/`scale` of their size (1, 2, 4 or 8). Each JPEG is read with its own pread, not
        through a memory map, whose pages would stay resident as the video is read and grow with its length."""
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        self._offsets, self._sizes = offsets, sizes
        self._scale, self._flag = scale, _DECODE_FLAGS[scale]
        stored = os.fstat(self._fd).st_size
        indexed = int(offsets[-1]) + int(sizes[-1]) if len(offsets) else 0
        if indexed != stored:
            why = "cut short?" if indexed > stored else "more after the last frame: appended to?"
            raise FacecycleError(f"{path}: {stored} bytes, but its frame table indexes {indexed} ({why})")
        self._frame_shape = self._decode(0).shape if len(offsets) else (0, 0, 3)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> np.ndarray:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"Frames takes one int index, got {type(index).__name__}: each frame is decoded on its own")
        index = range(len(self))[index]  # negative indices as usual; IndexError past the end
        rgb = self._decode(index)
        if rgb.shape != self._frame_shape:
            scaled = f" (decoded at 1/{self._scale} size)" if self._scale > 1 else ""
            raise FacecycleError(f"{self.path}: frame {index} is {list(rgb.shape)}, "
                                 f"frame 0 {list(self._frame_shape)}{scaled}")
        return rgb

    def _decode(self, index: int) -> np.ndarray:
        jpeg = os.pread(self._fd, int(self._sizes[index]), int(self._offsets[index]))
        bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), self._flag)
        if bgr is None:
            raise FacecycleError(f"{self.path}: frame {index} is not a readable JPEG image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_at(range(len(self)))

    def iter_at(self, indices: Iterable[int]) -> Iterator[np.ndarray]:
        """The frames at `indices`, in that order, decoded on DECODERS worker threads while the caller
        works on the one before (OpenCV decodes without holding the GIL)."""
        with ThreadPoolExecutor(DECODERS) as pool:
            ahead = deque()
            for index in indices:
                ahead.append(pool.submit(self.__getitem__, index))
                if len(ahead) > AHEAD:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self._frame_shape)

    def reduced(self, min_side: int) -> "Frames":
        """The same frames decoded smaller, by libjpeg's DCT scaling (1/8 scale decodes in ~0.4x the time
        of full size at 720p, and no resize follows): the smallest scale whose long side is still
        `min_side` px or more."""
        long_side = max(self._frame_shape[:2])
        scale = max((s for s in _DECODE_FLAGS if long_side // s >= min_side), default=1)
        return Frames(self.path, self._offsets, self._sizes, scale)


def read_videos(frames_dir: Path) -> pd.DataFrame:
    """videos.csv, checked for the columns and domains the later stages need."""
    listing = frames_dir / "videos.csv"
    videos = read_table(listing, "extract_frames", ["domain", "fps", "frames", "name", "split"],
                        {"name": str, "domain": str, "split": str})
    for domain in DOMAINS:
        if not (videos["domain"] == domain).any():
            raise FacecycleError(f"{listing}: no video of domain {domain}")
    return videos


def load_frames(frames_dir: Path, name: str, count: int) -> tuple[Frames, np.ndarray]:
    """One video's `count` frames and their times (seconds in the raw video)."""
    path, table = frames_dir / f"{name}.mjpeg", frames_dir / f"{name}.csv"
    required(path, "extract_frames")
    try:
        rows = pd.read_csv(table)
        times, offsets, sizes = (rows[column].to_numpy(np.float64) for column in ("time", "offset", "bytes"))
    except (OSError, ValueError, KeyError) as err:
        raise FacecycleError(f"{table}: unreadable ({err})") from None
    if len(rows) != count:
        raise FacecycleError(f"{table}: {len(rows)} rows for {count} frames")
    consecutive = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if count else offsets
    bad = np.flatnonzero((offsets != consecutive) | ~(sizes > 0))
    if len(bad):
        raise FacecycleError(f"{table}: row {bad[0]}: offset {offsets[bad[0]]:.0f}, bytes {sizes[bad[0]]:.0f} do not follow "
                             f"the previous frame (the JPEGs lie back to back, each at least 1 byte)")
    return Frames(path, offsets, sizes), times
