"""Readers of what the crop_faces stage writes (docs/contracts.md): crop arrays, boxes.csv, landmarks.

Training, inference, merge and metrics all read these files; one checked reader each keeps their
error messages alike and keeps dlib and torch out of the modules that only need the files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import FacecycleError

BOX_COLUMNS = ["video", "domain", "split", "frame", "time", "shot", "face", "cx", "cy", "size",
               "det_x0", "det_y0", "det_x1", "det_y1", "crop_index"]
LANDMARKS = "landmarks.npy"  # float32 [rows of boxes.csv, 68, 2] (x, y) in frame pixels, NaN where none


def load_crop_array(path: str | Path, rows: int | None = None, writer: str = "") -> np.ndarray:
    """A uint8 [N, S, S, 3] crop array, memory-mapped copy-on-write; `rows`, when given, must equal N.

    `writer`: the stage that writes the file, named when it is missing.
    """
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="c")
    except FileNotFoundError:
        raise FacecycleError(f"{path}: not found" + (f" (the {writer} stage writes it)" if writer else "")) from None
    except ValueError as err:
        raise FacecycleError(f"{path}: not a .npy array ({err})") from None
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != array.shape[2] or array.shape[3] != 3:
        raise FacecycleError(f"{path}: expected uint8 [N, S, S, 3] face crops, got {array.dtype} {list(array.shape)}")
    if rows is not None and len(array) != rows:
        raise FacecycleError(f"{path}: {len(array)} crops, but boxes.csv lists {rows} faces for it")
    return array


def load_crops(faces_dir: str | Path, domain: str, split: str) -> np.ndarray:
    """The `<domain>_<split>.npy` crops of the crop_faces output `faces_dir`."""
    return load_crop_array(Path(faces_dir) / f"{domain}_{split}.npy", writer="crop_faces")


def read_boxes(faces_dir: str | Path, split: str) -> pd.DataFrame:
    """The rows of `faces_dir/boxes.csv` in `split` (with and without a face), in (video, frame) order."""
    path = Path(faces_dir) / "boxes.csv"
    try:
        boxes = pd.read_csv(path, dtype={"video": str, "domain": str, "split": str})
    except FileNotFoundError:
        raise FacecycleError(f"{path}: not found (run crop_faces first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FacecycleError(f"{path}: not a boxes table ({err})") from None
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise FacecycleError(f"{path}: missing column(s) {missing}")
    boxes["face"] = boxes["face"].astype(bool)
    return boxes[boxes["split"] == split].sort_values(["video", "frame"], kind="stable")


def load_landmarks(faces_dir: str | Path, rows: pd.DataFrame) -> np.ndarray:
    """Landmarks [len(rows), 68, 2] of `rows`, rows of `read_boxes(faces_dir, ...)` (their index is
    the row number in boxes.csv); NaN where the frame has none (no face, or a train frame)."""
    path = Path(faces_dir) / LANDMARKS
    try:
        landmarks = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise FacecycleError(f"{path}: not found (run crop_faces first)") from None
    except ValueError as err:
        raise FacecycleError(f"{path}: not a .npy array ({err})") from None
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2) or (len(rows) and rows.index.max() >= len(landmarks)):
        raise FacecycleError(f"{path}: expected [rows of boxes.csv, 68, 2] landmarks, got {list(landmarks.shape)}")
    return np.asarray(landmarks[rows.index.to_numpy()], dtype=np.float64)
