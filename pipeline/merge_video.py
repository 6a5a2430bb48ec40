"""Put translated faces back into their frames and lay results side by side.

A translated crop covers the smoothed square box it was cut from (`boxes.csv` cx, cy, size), so
pasting it back is the crop geometry run backwards: resize to the box, and blend it in through a
mask (pipeline.face_mask: the feathered square, or the face outline from the landmarks so that
hair, background and clothes stay the source's), either as a weighted mean or by Poisson cloning;
first its colours are matched (mean/std in Lab, over the mask) to the source crop so the lighting
of the scene is kept. With an identity translator each step is (nearly) the identity, which the
tests check. The share of frame pixels each model changed goes to `changed.csv` for the report.
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
from pipeline.crop_outputs import load_crop_array, load_crops, load_landmarks, read_boxes
from pipeline.errors import FacecycleError
from pipeline.crop_geometry import crop_window
from pipeline.face_mask import face_mask, feather_mask, landmarks_usable
from pipeline.frame_outputs import Frames, load_frames, read_videos
from pipeline.models import label
from pipeline.params import MergeParams
from pipeline.spread import evenly
from pipeline.video import VideoWriter

CHANGED = "changed.csv"  # per video and model: the share of frame pixels the merge changed
CHANGED_COLUMNS = ["video", "model", "frames", "changed_share", "changed_max"]
_LABEL_HEIGHT = 28


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


def seamless(face: np.ndarray, region: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`face` Poisson-cloned into `region` (both float RGB in [0, 1], same size) where `mask` > 0:
    OpenCV's seamlessClone (Pérez et al., SIGGRAPH 2003) keeps the face's gradients and takes its
    colours from the region around it."""
    inside = (mask > 0).astype(np.uint8) * 255
    inside[[0, -1]], inside[:, [0, -1]] = 0, 0  # as seamlessClone does: then the face lands where it was cut
    if not inside.any():
        return face
    x, y, w, h = cv2.boundingRect(inside)
    cloned = cv2.seamlessClone(_to_uint8(face), _to_uint8(region), inside, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    return cloned.astype(np.float32) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def window_mask(box: tuple[float, float, float], landmarks: Optional[np.ndarray],
                params: MergeParams) -> Optional[np.ndarray]:
    """The `merge.mask` weights over the crop window of `box`, or None where the face mask cannot be
    drawn (no usable landmarks): that frame is left unchanged."""
    x0, y0, side = crop_window(*box)
    if params.mask == "square":
        return feather_mask(side, params.feather)
    if landmarks is None or not landmarks_usable(landmarks, (x0, y0), side):
        return None
    return face_mask(landmarks, (x0, y0), side, params.mask_erode, params.mask_blur)


def paste_face(frame: np.ndarray, face: np.ndarray, box: tuple[float, float, float], mask: np.ndarray,
               blend: str = "alpha", source: Optional[np.ndarray] = None) -> np.ndarray:
    """Return `frame` (uint8 HxWx3) with `face` (uint8 CxCx3) blended in at `box` = (cx, cy, size).

    `mask` (float [side, side] over the box's window, `window_mask`) weighs the face against the
    frame; pixels where it is 0 are the frame's, exactly. `blend` "poisson" first clones the face
    into the frame (`seamless`). `source` is the crop the face was translated from (any square
    size); when given, the face's colours are matched to it over the mask before pasting.
    """
    x0, y0, side = crop_window(*box)
    height, width = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    out = frame.copy()
    inside = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    if fx0 >= fx1 or fy0 >= fy1 or not mask[inside].any():
        return out
    face = face.astype(np.float32) / 255.0
    if source is not None:
        weight = _resize(mask, face.shape[0])
        face = match_color(face, _resize(source, face.shape[0]).astype(np.float32) / 255.0, weight)
    face = _resize(face, side)[inside]
    alpha = mask[inside]
    region = out[fy0:fy1, fx0:fx1].astype(np.float32) / 255.0
    if blend == "poisson":
        face = seamless(face, region, alpha)
    changed = alpha > 0
    blended = alpha[changed][:, None] * face[changed] + (1.0 - alpha[changed][:, None]) * region[changed]
    out[fy0:fy1, fx0:fx1][changed] = _to_uint8(blended)
    return out


def merged_frames(frames: Iterable[np.ndarray], rows: pd.DataFrame, translated: np.ndarray,
                  crops: Optional[np.ndarray], landmarks: Optional[np.ndarray],
                  params: MergeParams) -> Iterator[np.ndarray]:
    """Yield each frame of `rows` (one video's test rows of boxes.csv, in frame order) with its face replaced.

    `frames` holds the frame of each row, in the same order (`Frames.iter_at(rows["frame"])`), and is
    not written to; `translated[i]` is the face of the i-th row with a face; `crops` is the crop array
    the rows' `crop_index` points into (the translator's input, used for colour matching);
    `landmarks[j]` are the landmarks of row j (`load_landmarks`; only the face mask needs them).
    A frame without a face, or whose face mask cannot be drawn, is yielded unchanged.
    """
    face_row = 0
    for j, (row, frame) in enumerate(zip(rows.itertuples(index=False), frames, strict=True)):
        if not row.face:
            yield frame
            continue
        box = (row.cx, row.cy, row.size)
        mask = window_mask(box, None if landmarks is None else landmarks[j], params)
        face = np.asarray(translated[face_row])
        face_row += 1
        if mask is None:
            yield frame
            continue
        source = np.asarray(crops[row.crop_index]) if params.color_match else None
        yield paste_face(frame, face, box, mask, params.blend, source)


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
                crops: np.ndarray, landmarks: np.ndarray, out_dirs: dict[str, Path], compare_dir: Path, sheets_dir: Path,
                fps: float, audio: Optional[Path], params: MergeParams) -> list[dict]:
    """Write `<video>.mp4` for each model, the side-by-side comparison and its contact sheet, frame by
    frame; return a row per model: the mean and largest share of frame pixels it changed.

    The audio of `audio` (the raw video) is copied for the time span of `rows`: from the first
    frame's time to the last frame's time plus one frame.
    """
    height, width = frames.shape[1:3]
    labels = ["input"] + [label(model) for model in translated]
    span = dict(audio_from=audio, audio_start=float(rows["time"].iloc[0]),
                audio_end=float(rows["time"].iloc[-1]) + 1.0 / fps, crf=params.crf)
    sheet_at, sheet = _sheet_positions(rows, params.sheet_frames), []
    inputs, *copies = itertools.tee(frames.iter_at(rows["frame"]), 1 + len(translated))  # one decode per frame
    streams = [merged_frames(copy, rows, translated[model], crops, landmarks, params)
               for model, copy in zip(translated, copies)]
    changed = np.zeros((len(translated), len(rows)))
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(VideoWriter(out_dirs[model] / f"{video}.mp4", fps, width, height, **span))
                   for model in translated]
        compare_shape = side_by_side([frames[0]] * len(labels), labels).shape
        compare = stack.enter_context(VideoWriter(compare_dir / f"{video}.mp4", fps, compare_shape[1],
                                                  compare_shape[0], **span))
        progress = tqdm(inputs, total=len(rows), desc=f"merge_video {video}", unit="frame")
        for position, frame in enumerate(progress):
            panels = [frame] + [next(stream) for stream in streams]
            for model, (writer, panel) in enumerate(zip(writers, panels[1:])):
                writer.write(panel)
                changed[model, position] = (panel != frame).any(axis=2).mean()
            compare.write(side_by_side(panels, labels))
            if position in sheet_at:
                sheet.append(panels)
    _, png = cv2.imencode(".png", cv2.cvtColor(contact_sheet(sheet, labels), cv2.COLOR_RGB2BGR))
    with atomic_file(sheets_dir / f"{video}.png") as tmp:
        tmp.write_bytes(png.tobytes())
    return [{"video": video, "model": model, "frames": len(rows), "changed_share": float(shares.mean()),
             "changed_max": float(shares.max())} for model, shares in zip(translated, changed)]


def merge_test_videos(frames_dir: Path, faces_dir: Path, raw_dir: Path, translated_dirs: Sequence[Path],
                      results_dir: Path, params: MergeParams) -> list[str]:
    """Merge every test video of `boxes.csv` for each model in `translated_dirs` (named by folder).

    All inputs are opened and checked (tables, array sizes, each frame store's index and first
    frame) before the first frame is encoded, so a missing or mis-sized file fails at once; a frame
    damaged further into a store fails when it is reached, and no partial result is left. Writes
    `results_dir/<model>/`, `results_dir/compare/`, `results_dir/sheets/` and `results_dir/changed.csv`, each atomically;
    returns the videos merged.
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
        jobs.append((video, frames, rows, translated, crops, load_landmarks(faces_dir, rows),
                     float(videos.loc[video, "fps"]), raw_dir / videos.loc[video, "file"]))
    changed = []
    with contextlib.ExitStack() as stack:
        out_dirs = {model: stack.enter_context(atomic_dir(results_dir / model)) for model in models}
        compare_dir = stack.enter_context(atomic_dir(results_dir / "compare"))
        sheets_dir = stack.enter_context(atomic_dir(results_dir / "sheets"))  # only images: a DVC plots folder
        for video, frames, rows, translated, crops, landmarks, fps, audio in jobs:
            changed += merge_video(video, frames, rows, translated, crops, landmarks, out_dirs, compare_dir, sheets_dir,
                                   fps, audio, params)
        with atomic_file(results_dir / CHANGED) as tmp:
            pd.DataFrame(changed, columns=CHANGED_COLUMNS).to_csv(tmp, index=False)
    return [job[0] for job in jobs]
