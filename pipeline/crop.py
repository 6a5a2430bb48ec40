"""The crop_faces stage's work: extracted frames -> face boxes, train/test split, face crop arrays, summary.

Two passes over each video's memory-mapped frames: first every box (so the size of each crop
array is known), then the crops, written straight into `.npy` memory maps. Memory stays flat
however many frames there are (the paper's 22,388 crops at 286 px are 5.5 GB).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from tqdm import tqdm

from pipeline.atomic import atomic_dir
from pipeline.crop_outputs import BOX_COLUMNS
from pipeline.errors import FacecycleError
from pipeline.faces import FaceDetector, crop_square, jitter, scene_cuts, track_faces
from pipeline.params import DataParams
from pipeline.split import frame_splits

DOMAINS = ("A", "B")
SPLITS = ("train", "test")


def read_videos(frames_dir: Path) -> pd.DataFrame:
    """The extract stage's videos.csv, checked for the columns and domains this stage needs."""
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


def video_boxes(frames_dir: Path, video, params: DataParams, detect: FaceDetector) -> pd.DataFrame:
    """boxes.csv rows of one video (plus the raw_* columns), crop boxes with the margin added."""
    frames, times = load_frames(frames_dir, video.name, int(video.frames))
    table = track_faces(frames, float(video.fps), params.detect_every, detect).table
    for column in ("size", "raw_size"):
        table[column] *= 1 + 2 * params.margin
    split = video.split if isinstance(video.split, str) and video.split else None
    table.insert(0, "video", video.name)
    table.insert(1, "domain", video.domain)
    table.insert(2, "split", frame_splits(video.name, len(table), split, params.test_share, params.split_seed))
    table.insert(4, "time", times)
    return table


def check_faces(boxes: pd.DataFrame, frames_dir: Path) -> None:
    """A training video without any face, or a domain without training faces, is an error."""
    for name, rows in boxes.groupby("video", sort=False):
        if (rows["split"] == "train").any() and not rows["face"].any():
            raise FacecycleError(f"{frames_dir / name}.npy: no face in any frame of training video {name} "
                                 f"(domain {rows['domain'].iloc[0]})")
    for domain in DOMAINS:
        train = boxes[(boxes["domain"] == domain) & (boxes["split"] == "train")]
        if train.empty:
            raise FacecycleError(f"{frames_dir / 'videos.csv'}: domain {domain} has no training frames")
        if not train["face"].any():
            raise FacecycleError(f"{frames_dir / 'videos.csv'}: no face in the training frames of domain {domain}")


def summarize(boxes: pd.DataFrame, detector_runs: int) -> dict:
    """metrics/crop.json: frames and faces per domain and split, detection rate, box jitter."""
    def counts(rows: pd.DataFrame) -> dict:
        frames, faces = len(rows), int(rows["face"].sum())
        return {"frames": frames, "faces": faces, "detection_rate": faces / frames if frames else None}

    summary = counts(boxes)
    summary["detector_runs"] = detector_runs
    summary["scene_cuts"] = sum(len(scene_cuts(rows["shot"].to_numpy())) for _, rows in boxes.groupby("video"))
    summary["jitter_raw"] = _finite(jitter(boxes, "raw_", by=("video", "shot")))
    summary["jitter_smoothed"] = _finite(jitter(boxes, by=("video", "shot")))
    for domain in DOMAINS:
        summary[domain] = {split: counts(boxes[(boxes["domain"] == domain) & (boxes["split"] == split)])
                           for split in SPLITS}
    return summary


def _finite(value: float):
    return None if math.isnan(value) else value


def crop_faces(frames_dir: Path, out_dir: Path, params: DataParams) -> dict:
    """Write boxes.csv and `<domain>_<split>.npy` crops into `out_dir` (atomically); return the summary."""
    videos = read_videos(frames_dir)
    detect = FaceDetector()
    tables = []
    for video in tqdm(list(videos.itertuples()), desc="crop_faces: detect", unit="video"):
        tables.append(video_boxes(frames_dir, video, params, detect))
    boxes = pd.concat(tables, ignore_index=True)
    check_faces(boxes, frames_dir)
    boxes["crop_index"] = -1
    for (domain, split), rows in boxes[boxes["face"]].groupby(["domain", "split"]):
        boxes.loc[rows.index, "crop_index"] = np.arange(len(rows))
    counts = boxes[boxes["face"]].groupby(["domain", "split"]).size()
    size = params.load_size
    with atomic_dir(out_dir) as tmp:
        arrays = {key: open_memmap(tmp / f"{key[0]}_{key[1]}.npy", mode="w+", dtype=np.uint8,
                                   shape=(int(counts.get(key, 0)), size, size, 3))
                  for key in ((domain, split) for domain in DOMAINS for split in SPLITS)}
        with tqdm(total=int(boxes["face"].sum()), desc="crop_faces: crop", unit="face") as bar:
            for video in videos.itertuples():
                frames, _ = load_frames(frames_dir, video.name, int(video.frames))
                rows = boxes[(boxes["video"] == video.name) & boxes["face"]]
                for row in rows.itertuples():
                    arrays[row.domain, row.split][row.crop_index] = crop_square(frames[row.frame], row.cx, row.cy,
                                                                                row.size, size)
                bar.update(len(rows))
        for array in arrays.values():
            array.flush()
        del arrays
        boxes[BOX_COLUMNS].to_csv(tmp / "boxes.csv", index=False)
    return summarize(boxes, detect.runs)
