"""The crop_faces stage's work: extracted frames -> face boxes, train/test split, face crop arrays,
landmarks of the test faces, summary.

Two passes over each video's stored frames: first every box (so the size of each crop
array is known), then the crops, appended to their `.npy` files in order, and the landmarks.
Memory stays flat however many frames there are (the paper's 22,388 crops at 286 px are 5.5 GB).
"""
from __future__ import annotations

import functools
import math
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.common.domains import DOMAINS, SPLITS
from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_dir
from pipeline.common.params import DataParams
from pipeline.data.split import frame_splits
from pipeline.face.geometry import crop_square
from pipeline.face.identity import FaceDescriber, main_person_shots
from pipeline.face.landmarks import POINTS, predict_landmarks, smooth_landmarks
from pipeline.face.tracking import (
    HISTOGRAM_SIDE,
    FaceDetector,
    ShotFilter,
    VideoBoxes,
    jitter,
    scene_cuts,
    shot_ids,
    track_faces,
)
from pipeline.store.faces import BOX_COLUMNS, LANDMARKS, CropArrayWriter, faceless_videos, train_crop_table
from pipeline.store.frames import load_frames, read_videos


def video_boxes(frames_dir: Path, video, params: DataParams, detect: FaceDetector,
                keep_shots: ShotFilter | None, bar: tqdm) -> VideoBoxes:
    """One video's boxes: `table` holds its boxes.csv rows (plus the raw_* columns), crop boxes with
    the margin added."""
    frames, times = load_frames(frames_dir, video.name, int(video.frames))
    shots = shot_ids(frames.reduced(HISTOGRAM_SIDE))  # the histograms need no more pixels
    found = track_faces(frames, float(video.fps), params.detect_every, detect, keep_shots, bar, shots)
    table = found.table
    for column in ("size", "raw_size"):
        table[column] *= 1 + 2 * params.margin
    split = video.split if isinstance(video.split, str) and video.split else None
    table.insert(0, "video", video.name)
    table.insert(1, "domain", video.domain)
    table.insert(2, "split", frame_splits(video.name, len(table), split, params.test_share, params.split_seed))
    table.insert(4, "time", times)
    return found


def check_faces(boxes: pd.DataFrame, frames_dir: Path) -> None:
    """A training video without any face, or a domain without training faces, is an error."""
    for name, rows in boxes.groupby("video", sort=False):
        if (rows["split"] == "train").any() and not rows["face"].any():
            raise FacecycleError(f"{frames_dir / name}.mjpeg: no face in any frame of training video {name} "
                                 f"(domain {rows['domain'].iloc[0]})")
    for domain in DOMAINS:
        train = boxes[(boxes["domain"] == domain) & (boxes["split"] == "train")]
        if train.empty:
            raise FacecycleError(f"{frames_dir / 'videos.csv'}: domain {domain} has no training frames")
        if not train["face"].any():
            raise FacecycleError(f"{frames_dir / 'videos.csv'}: no face in the training frames of domain {domain}")


def crop_summary(boxes: pd.DataFrame, detector_runs: int, other_person_shots: int) -> dict:
    """metrics/crop.json: frames and faces per domain and split, detection rate, box jitter, shots
    left out as another person's."""
    def counts(rows: pd.DataFrame) -> dict:
        frames, faces = len(rows), int(rows["face"].sum())
        return {"frames": frames, "faces": faces, "detection_rate": faces / frames if frames else None}

    summary = counts(boxes)
    summary["detector_runs"] = detector_runs
    summary["scene_cuts"] = sum(len(scene_cuts(rows["shot"].to_numpy())) for _, rows in boxes.groupby("video"))
    summary["other_person_shots"] = other_person_shots
    summary["jitter_raw"] = _finite(jitter(boxes, "raw_", by=("video", "shot")))
    summary["jitter_smoothed"] = _finite(jitter(boxes, by=("video", "shot")))
    for domain in DOMAINS:
        summary[domain] = {split: counts(boxes[(boxes["domain"] == domain) & (boxes["split"] == split)])
                           for split in SPLITS}
    summary["videos"] = {name: counts(rows) for name, rows in boxes.groupby("video", sort=True)}
    summary["faceless_test_videos"] = faceless_videos(boxes[boxes["split"] == "test"])
    return summary


def _finite(value: float):
    return None if math.isnan(value) else value


def crop_faces(frames_dir: Path, out_dir: Path, params: DataParams) -> dict:
    """Write boxes.csv, train_crops.csv, `<domain>_<split>.npy` crops and landmarks.npy into `out_dir` (atomically);
    return the summary."""
    videos = read_videos(frames_dir)
    detect = FaceDetector()
    keep_shots = functools.partial(main_person_shots, describe=FaceDescriber()) if params.one_person else None
    with tqdm(total=int(videos["frames"].sum()), desc="crop_faces: detect", unit="frame") as bar:
        found = [video_boxes(frames_dir, video, params, detect, keep_shots, bar) for video in videos.itertuples()]
    boxes = pd.concat([f.table for f in found], ignore_index=True)
    check_faces(boxes, frames_dir)
    boxes["crop_index"] = -1
    for _, rows in boxes[boxes["face"]].groupby(["domain", "split"]):
        boxes.loc[rows.index, "crop_index"] = np.arange(len(rows))
    counts = boxes[boxes["face"]].groupby(["domain", "split"]).size()
    size = params.load_size
    landmarks = np.full((len(boxes), POINTS, 2), np.nan)
    with atomic_dir(out_dir) as tmp, ExitStack() as files:
        # crop_index counts each (domain, split)'s faces in video and frame order, the order written here
        arrays = {key: files.enter_context(CropArrayWriter(tmp / f"{key[0]}_{key[1]}.npy", int(counts.get(key, 0)), size))
                  for key in ((domain, split) for domain in DOMAINS for split in SPLITS)}
        with tqdm(total=int(boxes["face"].sum()), desc="crop_faces: crop", unit="face") as bar:
            for video in videos.itertuples():
                frames, _ = load_frames(frames_dir, video.name, int(video.frames))
                rows = boxes[(boxes["video"] == video.name) & boxes["face"]]
                for row, frame in zip(rows.itertuples(), frames.iter_at(rows["frame"])):
                    arrays[row.domain, row.split].append(crop_square(frame, row.cx, row.cy, row.size, size)[None])
                    if row.split == "test":
                        landmarks[row.Index] = predict_landmarks(frame, row.cx, row.cy, row.size, params.margin)
                bar.update(len(rows))
                own = (boxes["video"] == video.name).to_numpy()
                landmarks[own] = smooth_landmarks(landmarks[own], boxes.loc[own, "shot"].to_numpy(), float(video.fps))
        files.close()
        boxes[BOX_COLUMNS].to_csv(tmp / "boxes.csv", index=False)
        np.save(tmp / LANDMARKS, landmarks.astype(np.float32))
        train_crop_table(boxes).to_csv(tmp / "train_crops.csv", index=False)
    return crop_summary(boxes, detect.runs, sum(f.dropped_shots for f in found))
