"""Real face crops in the crop stage's format (docs/contracts.md), made from the GRID sample clips.

Training tests need `data/faces` without running detection: the GRID speakers sit centred in the
upper half of a 360x288 frame, so a fixed square box holds the face. Frames are decoded
sequentially with decord (DESIGN 5) and resized with OpenCV's area filter.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import decord
import numpy as np
import pandas as pd

BOX = (175.0, 150.0, 190.0)  # cx, cy, size in source pixels: the face of every GRID speaker


def decode(path: Path, frames: int) -> np.ndarray:
    """The first `frames` frames of a clip, read in order, as uint8 [N, H, W, 3] RGB."""
    reader = decord.VideoReader(str(path))
    return np.stack([reader.next().asnumpy() for _ in range(frames)])


def crop(frames: np.ndarray, size: int) -> np.ndarray:
    cx, cy, side = BOX
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    box = frames[:, y0:y0 + int(side), x0:x0 + int(side)]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in box])


def write_faces(out: Path, clips: dict[str, list[Path]], size: int, frames: int,
                cuts: dict[str, list[int]] | None = None, misses: dict[str, list[int]] | None = None) -> Path:
    """Write `<domain>_train.npy` and `boxes.csv` for `frames` frames of each clip.

    cuts: per video, the frames that start a new shot; misses: per video, frames without a face
    (no crop row, crop_index -1), as the crop stage writes them.
    """
    out.mkdir(parents=True, exist_ok=True)
    cuts, misses = cuts or {}, misses or {}
    rows = []
    for domain, paths in clips.items():
        crops = []
        for path in paths:
            video = path.stem
            pixels = crop(decode(path, frames), size)
            for frame in range(frames):
                face = frame not in misses.get(video, [])
                shot = sum(frame >= c for c in cuts.get(video, []))
                rows.append(dict(video=video, domain=domain, split="train", frame=frame, time=frame / 25.0,
                                 shot=shot, face=face, cx=BOX[0] if face else np.nan, cy=BOX[1] if face else np.nan,
                                 size=BOX[2] if face else np.nan, det_x0=np.nan, det_y0=np.nan, det_x1=np.nan,
                                 det_y1=np.nan, crop_index=len(crops) if face else -1))
                if face:
                    crops.append(pixels[frame])
        np.save(out / f"{domain}_train.npy", np.stack(crops))
    pd.DataFrame(rows).to_csv(out / "boxes.csv", index=False)
    return out
