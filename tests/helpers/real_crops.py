"""Real face crops in the crop stage's format (docs/contracts.md), made from the GRID sample clips.

Training tests need `data/faces` without running detection: the GRID speakers sit centred in the
upper half of a 360x288 frame, so a fixed square box holds the face. Frames are decoded in order
by the pipeline's reader and resized with OpenCV's area filter. `write_layout` writes any clips'
crops in the contract's layout (tests/translation_layout.py gives it dlib's boxes instead).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from helpers.decoders import decode
from pipeline.store.faces import train_crop_table

BOX = (175.0, 150.0, 190.0)  # cx, cy, size in source pixels: the face of every GRID speaker


def crop(frames: np.ndarray, size: int) -> np.ndarray:
    cx, cy, side = BOX
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    box = frames[:, y0:y0 + int(side), x0:x0 + int(side)]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in box])


def write_layout(out: Path, clips: list[dict]) -> None:
    """Write `<domain>_<split>.npy`, `boxes.csv` and `train_crops.csv` as the crop stage does.

    Each clip is a dict: video, domain, split, crops (one per frame, in frame order), box (cx, cy,
    size), and optionally cuts (frames that start a new shot) and misses (frames without a face:
    no crop, crop_index -1).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows, arrays = [], {}
    for clip in clips:
        array = arrays.setdefault(f"{clip['domain']}_{clip['split']}", [])
        misses, cuts = clip.get("misses", ()), clip.get("cuts", ())
        for frame, pixels in enumerate(clip["crops"]):
            face = frame not in misses
            cx, cy, size = clip["box"] if face else (np.nan, np.nan, np.nan)
            rows.append(dict(video=clip["video"], domain=clip["domain"], split=clip["split"], frame=frame,
                             time=frame / 25.0, shot=sum(frame >= c for c in cuts), face=face, cx=cx, cy=cy, size=size,
                             det_x0=np.nan, det_y0=np.nan, det_x1=np.nan, det_y1=np.nan,
                             crop_index=len(array) if face else -1))
            if face:
                array.append(pixels)
    for name, crops in arrays.items():
        np.save(out / f"{name}.npy", np.stack(crops))
    boxes = pd.DataFrame(rows)
    boxes.to_csv(out / "boxes.csv", index=False)
    train_crop_table(boxes).to_csv(out / "train_crops.csv", index=False)


def write_faces(out: Path, clips: dict[str, list[Path]], size: int, frames: int,
                cuts: dict[str, list[int]] | None = None, misses: dict[str, list[int]] | None = None) -> Path:
    """Write the training crops of the first `frames` frames of each clip, by domain, cut with BOX.

    cuts: per video, the frames that start a new shot; misses: per video, frames without a face.
    """
    cuts, misses = cuts or {}, misses or {}
    write_layout(out, [dict(video=path.stem, domain=domain, split="train", crops=crop(decode(path, frames), size),
                            box=BOX, cuts=cuts.get(path.stem, ()), misses=misses.get(path.stem, ()))
                       for domain, paths in clips.items() for path in paths])
    return out
