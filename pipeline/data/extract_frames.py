"""The extract_frames stage's work: decode each fetched video, trimmed and resampled, into the
frame store (pipeline/store/frames.py: one Motion-JPEG file and a frame table per video).

Frames are encoded as they are decoded, so memory stays flat however long the video is.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pandas as pd
from tqdm import tqdm

from pipeline.common.errors import FacecycleError
from pipeline.store.frames import FrameWriter
from pipeline.store.tables import read_table
from pipeline.store.video import VideoInfo, iter_frames, probe, wanted_frames


def extract_frames(raw_dir: Path, out_dir: Path, fps: Optional[float], jpeg_quality: int) -> pd.DataFrame:
    """Write `<name>.mjpeg` and `<name>.csv` into `out_dir` for every video of `raw_dir/videos.csv`;
    return that table with `fps, source_fps, frames, width, height` added."""
    listing = raw_dir / "videos.csv"
    table = read_table(listing, "fetch", dtype={"name": str, "split": str})
    plans = []  # probe every video and check its trim before the long work, so a bad file fails at once
    for video in table.itertuples():
        path = raw_dir / video.file
        info = probe(path)
        plans.append((video, info, len(wanted_frames(path, info, fps, _seconds(video.start), _seconds(video.end)))))
    added = []
    with tqdm(total=sum(count for _, _, count in plans), desc="extract_frames", unit="frame") as bar:
        for video, info, count in plans:
            write_video_frames(raw_dir / video.file, out_dir / video.name, info, fps,
                               _seconds(video.start), _seconds(video.end), jpeg_quality, bar)
            added.append({"fps": fps or info.fps, "source_fps": info.fps, "frames": count,
                          "width": info.width, "height": info.height})
    return pd.concat([table, pd.DataFrame(added)], axis=1)


def write_video_frames(path: Path, stem: Path, info: VideoInfo, fps: Optional[float],
                       start: Optional[float], end: Optional[float], jpeg_quality: int, bar: tqdm) -> None:
    """Decode the frames of one video (resampled to `fps`, trimmed to [start, end)) into
    `<stem>.mjpeg` and list them in `<stem>.csv`."""
    with FrameWriter(stem, jpeg_quality) as frames:
        for source, time, rgb in iter_frames(path, fps, start, end, info):
            if rgb.shape != (info.height, info.width, 3):
                raise FacecycleError(f"{path}: frame {source} is {list(rgb.shape)} (height, width, channels), "
                                     f"the video's first is {[info.height, info.width, 3]}")
            frames.add(rgb, source, time)
            bar.update()


def _seconds(value: float) -> Optional[float]:
    """A start/end cell of videos.csv: empty (NaN) means no trim."""
    return None if value is None or math.isnan(value) else float(value)
