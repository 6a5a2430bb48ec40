"""Readers of what the crop_faces stage writes (docs/contracts.md): crop arrays, boxes.csv, train_crops.csv,
landmarks; and the writer of crop arrays, which crop_faces and infer share.

Training, inference, merge and metrics all read these files; one checked reader each keeps their
error messages alike and keeps dlib and torch out of the modules that only need the files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.errors import FacecycleError
from pipeline.store.tables import load_array, read_table

BOX_COLUMNS = ["video", "domain", "split", "frame", "time", "shot", "face", "cx", "cy", "size",
               "det_x0", "det_y0", "det_x1", "det_y1", "crop_index"]
LANDMARKS = "landmarks.npy"  # float32 [rows of boxes.csv, 68, 2] (x, y) in frame pixels, NaN where none
# train_crops.csv: where each train crop comes from, all that Recycle-GAN's triplets need. Training
# depends on it instead of boxes.csv, so test videos added, edited or removed retrain nothing.
TRAIN_CROP_COLUMNS = ["domain", "crop_index", "video", "shot", "frame"]


class CropArrayWriter:
    """Writes a uint8 [count, size, size, 3] .npy crop array front to back through a file handle.

    Not through a memory map: the pages written to a map stay in the process's resident memory
    until it ends, so a stage writing 22,400 crops of 286 px would hold 5 GiB (docs/measurements/scale.md).
    `with CropArrayWriter(path, count, size) as out: out.append(crops)`; fewer or more than
    `count` crops is an error.
    """

    def __init__(self, path: str | Path, count: int, size: int):
        self.path, self.shape, self.written = Path(path), (count, size, size, 3), 0

    def __enter__(self) -> "CropArrayWriter":
        self._file = open(self.path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._file, header)
        return self

    def append(self, crops: np.ndarray) -> None:
        """Add uint8 crops [n, size, size, 3] after those already written."""
        if crops.dtype != np.uint8 or crops.shape[1:] != self.shape[1:] or self.written + len(crops) > self.shape[0]:
            raise ValueError(f"{self.path}: cannot add {crops.dtype} {list(crops.shape)} to {self.written} of "
                             f"{list(self.shape)} uint8 crops")
        self._file.write(np.ascontiguousarray(crops).data)
        self.written += len(crops)

    def __exit__(self, failed, *_) -> None:
        self._file.close()
        if not failed and self.written != self.shape[0]:
            raise ValueError(f"{self.path}: {self.written} of {self.shape[0]} crops written")


def load_crop_array(path: str | Path, writer: str, rows: int | None = None) -> np.ndarray:
    """A uint8 [N, S, S, 3] crop array that stage `writer` wrote, memory-mapped copy-on-write; `rows`,
    when given, must equal N."""
    path = Path(path)
    array = load_array(path, writer, mmap_mode="c")
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != array.shape[2] or array.shape[3] != 3:
        raise FacecycleError(f"{path}: expected uint8 [N, S, S, 3] face crops, got {array.dtype} {list(array.shape)}")
    if rows is not None and len(array) != rows:
        raise FacecycleError(f"{path}: {len(array)} crops, but boxes.csv lists {rows} faces for it")
    return array


def load_crops(faces_dir: str | Path, domain: str, split: str) -> np.ndarray:
    """The `<domain>_<split>.npy` crops of the crop_faces output `faces_dir`."""
    return load_crop_array(Path(faces_dir) / f"{domain}_{split}.npy", "crop_faces")


def train_crop_table(boxes: pd.DataFrame) -> pd.DataFrame:
    """The train_crops.csv rows of a boxes table: its train faces, by domain and crop_index."""
    rows = boxes[(boxes["split"] == "train") & (boxes["crop_index"] >= 0)]
    return rows.sort_values(["domain", "crop_index"], kind="stable")[TRAIN_CROP_COLUMNS]


def read_train_crops(faces_dir: str | Path) -> pd.DataFrame:
    """`faces_dir/train_crops.csv`, checked for its columns."""
    path = Path(faces_dir) / "train_crops.csv"
    return _read_table(path, TRAIN_CROP_COLUMNS)


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    return read_table(path, "crop_faces", columns, {"video": str, "domain": str, "split": str})


def read_boxes(faces_dir: str | Path, split: str) -> pd.DataFrame:
    """The rows of `faces_dir/boxes.csv` in `split` (with and without a face), in (video, frame) order."""
    boxes = _read_table(Path(faces_dir) / "boxes.csv", BOX_COLUMNS)
    boxes["face"] = boxes["face"].astype(bool)
    return boxes[boxes["split"] == split].sort_values(["video", "frame"], kind="stable")


def faceless_videos(rows: pd.DataFrame) -> list[str]:
    """The videos of boxes.csv `rows` without a face in any of them (for test rows: nothing to
    translate, their merged results are the source, unchanged)."""
    found = rows.groupby("video", sort=True)["face"].any()
    return [str(name) for name in found.index[~found]]


def load_landmarks(faces_dir: str | Path, rows: pd.DataFrame) -> np.ndarray:
    """Landmarks [len(rows), 68, 2] of `rows`, rows of `read_boxes(faces_dir, ...)` (their index is
    the row number in boxes.csv); NaN where the frame has none (no face, or a train frame)."""
    path = Path(faces_dir) / LANDMARKS
    landmarks = load_array(path, "crop_faces")
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2) or (len(rows) and rows.index.max() >= len(landmarks)):
        raise FacecycleError(f"{path}: expected [rows of boxes.csv, 68, 2] landmarks, got {list(landmarks.shape)}")
    return np.asarray(landmarks[rows.index.to_numpy()], dtype=np.float64)
