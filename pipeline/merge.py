"""Put translated faces back into their frames and lay results side by side.

A translated crop covers the smoothed square box it was cut from (`boxes.csv` cx, cy, size), so
pasting it back is the crop geometry run backwards: resize to the box, blend with a feathered
mask so the seam fades into the frame, and first match its colours (mean/std in Lab) to the
source crop so the lighting of the scene is kept. With an identity translator each step is
(nearly) the identity, which the tests check.
"""
from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.atomic import atomic_dir, atomic_file
from pipeline.crop_outputs import load_crop_array, load_crops, read_boxes
from pipeline.errors import FacecycleError
from pipeline.crop_geometry import crop_window
from pipeline.frame_outputs import Frames, load_frames, read_videos
from pipeline.params import MergeParams
from pipeline.spread import evenly
from pipeline.video import VideoWriter

LABELS = {"cyclegan": "CycleGAN", "recyclegan": "Recycle-GAN"}
_LABEL_HEIGHT = 28


def feather_mask(size: int, feather: float) -> np.ndarray:
    """float32 [size, size] weights: 1 inside, a smooth ramp to 0 over `feather` * size at each edge."""
    index = np.arange(size)
    edge = ((np.minimum(index, size - 1 - index) + 0.5) / size).astype(np.float32)  # pixel centre to nearest edge
    ramp = np.clip(edge / feather, 0.0, 1.0) if feather > 0 else np.ones_like(edge)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no visible kink where the ramp ends
    return np.outer(ramp, ramp)


def match_color(face: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Shift and scale `face`'s Lab channels to `reference`'s weighted mean and std (float RGB in [0, 1])."""
    lab = cv2.cvtColor(face, cv2.COLOR_RGB2Lab)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2Lab)
    w = (weight / weight.sum())[..., None]
    mean, ref_mean = (lab * w).sum((0, 1)), (ref * w).sum((0, 1))
    std = np.sqrt(((lab - mean) ** 2 * w).sum((0, 1)))
    ref_std = np.sqrt(((ref - ref_mean) ** 2 * w).sum((0, 1)))
    lab = (lab - mean) * (ref_std / np.maximum(std, 1e-3)) + ref_mean
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image: area averaging when shrinking (no aliasing), cubic when enlarging."""
    if image.shape[0] == size:
        return image
    interpolation = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


def paste_face(frame: np.ndarray, face: np.ndarray, box: tuple[float, float, float], feather: float,
               source: Optional[np.ndarray] = None) -> np.ndarray:
    """Return `frame` (uint8 HxWx3) with `face` (uint8 CxCx3) blended in at `box` = (cx, cy, size).

    `source` is the crop the face was translated from (any square size); when given, the face's
    colours are matched to it before pasting.
    """
    x0, y0, side = crop_window(*box)
    face = face.astype(np.float32) / 255.0
    weight = feather_mask(face.shape[0], feather)
    if source is not None:
        face = match_color(face, _resize(source, face.shape[0]).astype(np.float32) / 255.0, weight)
    face, mask = _resize(face, side), feather_mask(side, feather)
    height, width = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    out = frame.copy()
    if fx0 >= fx1 or fy0 >= fy1:
        return out
    region = out[fy0:fy1, fx0:fx1].astype(np.float32) / 255.0
    inside = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    alpha = mask[inside][..., None]
    blended = alpha * face[inside] + (1.0 - alpha) * region
    out[fy0:fy1, fx0:fx1] = np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)
    return out


def merged_frames(frames: Iterable[np.ndarray], rows: pd.DataFrame, translated: np.ndarray, crops: np.ndarray,
                  feather: float, color_match: bool) -> Iterator[np.ndarray]:
    """Yield each frame of `rows` (one video's test rows of boxes.csv, in frame order) with its face replaced.

    `frames` holds the frame of each row, in the same order (`Frames.iter_at(rows["frame"])`), and is
    not written to; `translated[i]` is the face of the i-th row with a face; `crops` is the crop array
    the rows' `crop_index` points into (the translator's input, used for colour matching).
    """
    face_row = 0
    for row, frame in zip(rows.itertuples(index=False), frames, strict=True):
        if not row.face:
            yield frame
            continue
        source = np.asarray(crops[row.crop_index]) if color_match else None
        yield paste_face(frame, np.asarray(translated[face_row]), (row.cx, row.cy, row.size), feather, source)
        face_row += 1


def label_bar(width: int, labels: Sequence[str]) -> np.ndarray:
    """A black strip `width` pixels wide with each label centred over its equal share of the width."""
    bar = np.zeros((_LABEL_HEIGHT, width, 3), np.uint8)
    panel = width // len(labels)
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1
    for i, text in enumerate(labels):
        (text_width, text_height), _ = cv2.getTextSize(text, font, scale, thickness)
        origin = (i * panel + max((panel - text_width) // 2, 2), (_LABEL_HEIGHT + text_height) // 2)
        cv2.putText(bar, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return bar


def side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Panels of equal size next to each other under a label bar."""
    row = np.concatenate(panels, axis=1)
    return np.concatenate([label_bar(row.shape[1], labels), row], axis=0)


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str]) -> np.ndarray:
    """One label bar over several side-by-side rows (a few frames of a comparison at a glance)."""
    grid = np.concatenate([np.concatenate(panels, axis=1) for panels in rows], axis=0)
    return np.concatenate([label_bar(grid.shape[1], labels), grid], axis=0)


def _sheet_positions(rows: pd.DataFrame, count: int) -> set[int]:
    """Positions (in `rows`) of `count` evenly spaced frames for the contact sheet, faces preferred."""
    candidates = np.flatnonzero(rows["face"].to_numpy()) if rows["face"].any() else np.arange(len(rows))
    return {int(candidates[i]) for i in evenly(len(candidates), count)}


def merge_video(video: str, frames: Frames, rows: pd.DataFrame, translated: dict[str, np.ndarray],
                crops: np.ndarray, out_dirs: dict[str, Path], compare_dir: Path, fps: float,
                audio: Optional[Path], params: MergeParams) -> None:
    """Write `<video>.mp4` for each model, the side-by-side comparison and its contact sheet, frame by frame.

    The audio of `audio` (the raw video) is copied for the time span of `rows`: from the first
    frame's time to the last frame's time plus one frame.
    """
    height, width = frames.shape[1:3]
    labels = ["input"] + [LABELS.get(model, model) for model in translated]
    span = dict(audio_from=audio, audio_start=float(rows["time"].iloc[0]),
                audio_end=float(rows["time"].iloc[-1]) + 1.0 / fps, crf=params.crf)
    sheet_at, sheet = _sheet_positions(rows, params.sheet_frames), []
    inputs, *copies = itertools.tee(frames.iter_at(rows["frame"]), 1 + len(translated))  # one decode per frame
    streams = [merged_frames(copy, rows, translated[model], crops, params.feather, params.color_match)
               for model, copy in zip(translated, copies)]
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(VideoWriter(out_dirs[model] / f"{video}.mp4", fps, width, height, **span))
                   for model in translated]
        compare_shape = side_by_side([frames[0]] * len(labels), labels).shape
        compare = stack.enter_context(VideoWriter(compare_dir / f"{video}.mp4", fps, compare_shape[1],
                                                  compare_shape[0], **span))
        progress = tqdm(inputs, total=len(rows), desc=f"merge_video {video}", unit="frame")
        for position, frame in enumerate(progress):
            panels = [frame] + [next(stream) for stream in streams]
            for writer, panel in zip(writers, panels[1:]):
                writer.write(panel)
            compare.write(side_by_side(panels, labels))
            if position in sheet_at:
                sheet.append(panels)
    _, png = cv2.imencode(".png", cv2.cvtColor(contact_sheet(sheet, labels), cv2.COLOR_RGB2BGR))
    with atomic_file(compare_dir / f"{video}.png") as tmp:
        tmp.write_bytes(png.tobytes())


def merge_test_videos(frames_dir: Path, faces_dir: Path, raw_dir: Path, translated_dirs: Sequence[Path],
                      results_dir: Path, params: MergeParams) -> list[str]:
    """Merge every test video of `boxes.csv` for each model in `translated_dirs` (named by folder).

    All inputs are opened and checked (tables, array sizes, each frame store's index and first
    frame) before the first frame is encoded, so a missing or mis-sized file fails at once; a frame
    damaged further into a store fails when it is reached, and no partial result is left. Writes `results_dir/<model>/` and
    `results_dir/compare/`, each atomically; returns the videos merged.
    """
    test = read_boxes(faces_dir, "test")
    videos = read_videos(frames_dir).set_index("name")  # the fetch table (raw `file`) plus `fps`, `frames`
    if "file" not in videos.columns:
        raise FacecycleError(f"{frames_dir / 'videos.csv'}: missing column(s) ['file']")
    models = [Path(d).name for d in translated_dirs]
    jobs = []
    for video, rows in test.groupby("video", sort=True):
        faces = int(rows["face"].sum())
        frames, _ = load_frames(frames_dir, video, int(videos.loc[video, "frames"]))
        translated = {model: load_crop_array(Path(d) / f"{video}.npy", faces, "infer")
                      for model, d in zip(models, translated_dirs)}
        crops = load_crops(faces_dir, rows["domain"].iloc[0], "test") if faces and params.color_match else None
        jobs.append((video, frames, rows, translated, crops, float(videos.loc[video, "fps"]),
                     raw_dir / videos.loc[video, "file"]))
    with contextlib.ExitStack() as stack:
        out_dirs = {model: stack.enter_context(atomic_dir(results_dir / model)) for model in models}
        compare_dir = stack.enter_context(atomic_dir(results_dir / "compare"))
        for video, frames, rows, translated, crops, fps, audio in jobs:
            merge_video(video, frames, rows, translated, crops, out_dirs, compare_dir, fps, audio, params)
    return [job[0] for job in jobs]
