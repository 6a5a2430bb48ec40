"""Real face crops of GRID clips, and the metrics stage's inputs in the layout of docs/contracts.md.

Crops are cut the way crop_faces cuts them (pipeline.face.tracking: dlib HOG box, data.margin on each
side, edge-padded square resized to load_size), with one box per clip: the GRID camera is fixed
and the speakers barely move; the test faces get dlib's 68 landmarks in that box, as crop_faces
gives them. `data/translated/<model>/` is filled by the tests with known transforms of real
crops, so each metric has an answer it must find.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.decoders import decode
from helpers.real_crops import write_layout
from pipeline.face.geometry import crop_square
from pipeline.face.landmarks import predict_landmarks
from pipeline.face.tracking import FaceDetector, centre_size
from pipeline.store.faces import LANDMARKS

MARGIN = 0.4  # params.yaml data.margin


def face_box(frame: np.ndarray) -> tuple[float, float, float]:
    """(cx, cy, size) of the crop box around the largest face, margin included."""
    cx, cy, size = centre_size(FaceDetector()(frame)[0])
    return cx, cy, size * (1 + 2 * MARGIN)


def cut_faces(path: Path, count: int, size: int = 72, skip: int = 0) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Face crops [count, size, size, 3] of frames skip .. skip+count-1 of a GRID clip, and their box."""
    clip = decode(path, skip + count)[skip:]
    box = face_box(clip[0])
    return np.stack([crop_square(f, *box, size) for f in clip]), box


def grid_crops(path: Path, count: int, size: int = 72, skip: int = 0) -> np.ndarray:
    return cut_faces(path, count, size, skip)[0]


def write_faces(faces: Path, clips: list[tuple[Path, str, str]], count: int, size: int,
                faceless: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Write boxes.csv, <domain>_<split>.npy and landmarks.npy (dlib's, for the test faces) for the
    first `count` frames of each (path, domain, split) clip, one shot each, and `count` test frames
    without a face for each {name: domain} of `faceless`; return the crops of each test video by name."""
    cut = {path: cut_faces(path, count, size) for path, _, _ in clips}
    without = [dict(video=name, domain=domain, split="test", crops=np.zeros((count, size, size, 3), np.uint8),
                    box=(np.nan,) * 3, misses=range(count)) for name, domain in (faceless or {}).items()]
    write_layout(faces, [dict(video=path.stem, domain=domain, split=split, crops=cut[path][0], box=cut[path][1])
                         for path, domain, split in clips] + without)
    boxes = pd.read_csv(faces / "boxes.csv")
    landmarks = np.full((len(boxes), 68, 2), np.nan, np.float32)
    for path, _, split in clips:
        if split == "test":
            rows = boxes[boxes["video"] == path.stem]
            for index, row, frame in zip(rows.index, rows.itertuples(), decode(path, count)):
                landmarks[index] = predict_landmarks(frame, row.cx, row.cy, row.size, MARGIN)
    np.save(faces / LANDMARKS, landmarks)
    return {path.stem: cut[path][0] for path, _, split in clips if split == "test"}


def write_translated(translated: Path, model: str, video: str, fake: np.ndarray, rec: np.ndarray) -> None:
    """`<model>/<video>.npy` and `<video>_rec.npy` as infer writes them (`infer.temporal: none`)."""
    (translated / model).mkdir(parents=True, exist_ok=True)
    (translated / model / "temporal.json").write_text('{"temporal": "none"}\n')
    np.save(translated / model / f"{video}.npy", fake.astype(np.uint8))
    np.save(translated / model / f"{video}_rec.npy", rec.astype(np.uint8))
