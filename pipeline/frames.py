"""The frame store that extract_frames writes: per video one packed uint8 array of RGB frames and a frame table.

One `.npy` per video rather than one image file per frame: DVC hashes a 20,000-file folder about
four times slower than a packed file on every command (DESIGN 5), and a `.npy` memory-maps for
the next stage. Frames go into the array as they are decoded (`open_memmap`), so memory stays
flat however long the video is.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from tqdm import tqdm

from pipeline.errors import FacecycleError
from pipeline.video import VideoInfo, iter_frames, probe, wanted_frames


def extract_frames(raw_dir: Path, out_dir: Path, fps: Optional[float]) -> pd.DataFrame:
    """Write `<name>.npy` and `<name>.csv` into `out_dir` for every video of `raw_dir/videos.csv`;
    return that table with `fps, source_fps, frames, width, height` added."""
    listing = raw_dir / "videos.csv"
    if not listing.is_file():
        raise FacecycleError(f"{listing}: not found (run the fetch stage first)")
    table = pd.read_csv(listing, dtype={"name": str, "split": str})
    plans = []  # probe every video and check its trim before the long work, so a bad file fails at once
    for video in table.itertuples():
        path = raw_dir / video.file
        info = probe(path)
        plans.append((video, info, len(wanted_frames(path, info, fps, _seconds(video.start), _seconds(video.end)))))
    added = []
    with tqdm(total=sum(count for _, _, count in plans), desc="extract_frames", unit="frame") as bar:
        for video, info, count in plans:
            write_video_frames(raw_dir / video.file, out_dir / video.name, info, count,
                               fps, _seconds(video.start), _seconds(video.end), bar)
            added.append({"fps": fps or info.fps, "source_fps": info.fps, "frames": count,
                          "width": info.width, "height": info.height})
    return pd.concat([table, pd.DataFrame(added)], axis=1)


def write_video_frames(path: Path, stem: Path, info: VideoInfo, count: int, fps: Optional[float],
                       start: Optional[float], end: Optional[float], bar: tqdm) -> None:
    """Decode `count` frames of one video (resampled to `fps`, trimmed to [start, end)) into
    `<stem>.npy` and list them in `<stem>.csv`."""
    frames = open_memmap(stem.with_suffix(".npy"), mode="w+", dtype=np.uint8, shape=(count, info.height, info.width, 3))
    rows = []
    for i, (source, time, rgb) in enumerate(iter_frames(path, fps, start, end)):
        if rgb.shape != frames.shape[1:]:
            raise FacecycleError(f"{path}: frame {source} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                 f"the video is {info.width}x{info.height}")
        frames[i] = rgb
        rows.append((i, source, time))
        bar.update()
    frames.flush()
    del frames
    pd.DataFrame(rows, columns=["frame", "source_frame", "time"]).to_csv(stem.with_suffix(".csv"), index=False)


def _seconds(value: float) -> Optional[float]:
    """A start/end cell of videos.csv: empty (NaN) means no trim."""
    return None if value is None or math.isnan(value) else float(value)
