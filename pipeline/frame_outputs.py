"""Readers of what the extract_frames stage writes (docs/contracts.md): videos.csv and each video's
frames `.npy` with its frame table.

crop_faces and merge_video both read these files; the readers live apart from the decoder
(pipeline/frames.py) so neither stage depends on how frames were decoded, only on the files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import FacecycleError

DOMAINS = ("A", "B")


def read_videos(frames_dir: Path) -> pd.DataFrame:
    """videos.csv, checked for the columns and domains the later stages need."""
    listing = frames_dir / "videos.csv"
    if not listing.is_file():
        raise FacecycleError(f"{listing}: not found (run extract_frames first)")
    videos = pd.read_csv(listing, dtype={"name": str, "domain": str, "split": str})
    missing = sorted({"name", "domain", "split", "fps", "frames"} - set(videos.columns))
    if missing:
        raise FacecycleError(f"{listing}: missing column(s) {missing}")
    for domain in DOMAINS:
        if not (videos["domain"] == domain).any():
            raise FacecycleError(f"{listing}: no video of domain {domain}")
    return videos


def load_frames(frames_dir: Path, name: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped uint8 frames [count, H, W, 3] of one video and their times (seconds in the raw video)."""
    path, table = frames_dir / f"{name}.npy", frames_dir / f"{name}.csv"
    try:
        frames = np.load(path, mmap_mode="r")
        times = pd.read_csv(table)["time"].to_numpy()
    except (OSError, ValueError, KeyError) as err:
        raise FacecycleError(f"{path if not path.is_file() else table}: unreadable ({err})") from None
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(frames) != count:
        raise FacecycleError(f"{path}: expected uint8 [{count}, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if len(times) != count:
        raise FacecycleError(f"{table}: {len(times)} rows for {count} frames")
    return frames, times
