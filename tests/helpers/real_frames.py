"""Real video frames for the crop tests, decoded with pipeline.store.video and stored as extract_frames does.

`write_frames` writes `<name>.mjpeg`, `<name>.csv` and `videos.csv` in the layout of docs/contracts.md,
so the crop stage can be run on real clips without the fetch and extract stages. `region` cuts a
part of every frame (real footage, e.g. background only, for a video without a face).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.decoders import decode
from helpers.repo import shipped_params
from pipeline.store.frames import FrameWriter
from pipeline.store.video import probe


def write_frames(frames_dir: Path, videos: list[dict]) -> Path:
    """Write the extract stage's output for `videos`: dicts with name, domain, path and optional
    split, limit, region."""
    frames_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for video in videos:
        fps = probe(video["path"]).fps
        frames = decode(video["path"], video.get("limit"), video.get("region"))
        with FrameWriter(frames_dir / video["name"], shipped_params("data").jpeg_quality) as out:
            for i, rgb in enumerate(frames):
                out.add(rgb, i, i / fps)
        rows.append({"name": video["name"], "domain": video["domain"], "split": video.get("split"),
                     "file": Path(video["path"]).name, "sha256": None, "start": None, "end": None, "fps": fps,
                     "source_fps": fps, "frames": len(frames), "width": frames.shape[2], "height": frames.shape[1]})
    pd.DataFrame(rows).to_csv(frames_dir / "videos.csv", index=False)
    return frames_dir
