"""Put translated faces back into their frames and lay results side by side.

A translated crop covers the smoothed square box it was cut from (`boxes.csv` cx, cy, size), so
pasting it back is the crop geometry run backwards: resize to the box, and blend it in through a
mask (pipeline.face.mask: the feathered square, or the face outline from the landmarks so that
hair, background and clothes stay the source's), either as a weighted mean or by Poisson cloning;
first its colours are matched (mean/std in Lab, over the mask) to the source crop so the lighting
of the scene is kept. With an identity translator each step is (nearly) the identity, which the
tests check. The share of frame pixels each model changed goes to `changed.csv` for the report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_dir, atomic_file
from pipeline.common.params import MergeParams
from pipeline.common.sampling import evenly_spaced
from pipeline.face.geometry import crop_window, resize_square
from pipeline.face.mask import (
    along_track,
    face_mask,
    feather_mask,
    head_weights,
    hull_mask,
    landmarks_usable,
    match_color,
    soften,
)
from pipeline.models import label
from pipeline.store.faces import load_crop_array, load_crops, load_landmarks, read_boxes
from pipeline.store.frames import Frames, load_frames, read_videos
from pipeline.store.video import VideoWriter

CHANGED = "changed.csv"  # per video and model: the share of frame pixels the merge changed
CHANGED_COLUMNS = ["video", "model", "frames", "changed_share", "changed_max"]
_LABEL_HEIGHT = 28


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
    """The `face` or `square` weights over the crop window of `box`, or None where the face mask
    cannot be drawn (no usable landmarks): that frame is left unchanged."""
    x0, y0, side = crop_window(*box)
    if params.mask == "square":
        return feather_mask(side, params.feather)
    if landmarks is None or not landmarks_usable(landmarks, (x0, y0), side):
        return None
    return face_mask(landmarks, (x0, y0), side, params.mask_erode, params.mask_blur)


def paste_face(frame: np.ndarray, face: np.ndarray, box: tuple[float, float, float], mask: np.ndarray,
               blend: str = "alpha") -> np.ndarray:
    """Return `frame` (uint8 HxWx3) with `face` (float RGB [C, C, 3] in [0, 1]) blended in at `box` = (cx, cy, size).

    `mask` (float, square, over the box's window at any size: it is resized to the window's side)
    weighs the face against the frame; pixels where it is 0 are the frame's, exactly. `blend`
    "poisson" first clones the face into the frame (`seamless`).
    """
    x0, y0, side = crop_window(*box)
    height, width = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    out = frame.copy()
    inside = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    alpha = cv2.resize(mask, (side, side), interpolation=cv2.INTER_LINEAR) if mask.shape[0] != side else mask
    alpha = alpha[inside]
    if fx0 >= fx1 or fy0 >= fy1 or not alpha.any():
        return out
    face = resize_square(face, side)[inside]
    region = out[fy0:fy1, fx0:fx1].astype(np.float32) / 255.0
    if blend == "poisson":
        face = seamless(face, region, alpha)
    changed = alpha > 0
    blended = alpha[changed][:, None] * face[changed] + (1.0 - alpha[changed][:, None]) * region[changed]
    out[fy0:fy1, fx0:fx1][changed] = _to_uint8(blended)
    return out


def _in_crop(landmarks: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """Frame-pixel landmarks in the pixels of a `size` px crop of `box`'s window."""
    x0, y0, side = crop_window(*box)
    return (landmarks - (x0, y0)) * (size / side)


def pasted_faces(rows: pd.DataFrame, translated: np.ndarray, crops: Optional[np.ndarray],
                  landmarks: Optional[np.ndarray], params: MergeParams
                  ) -> Iterator[Optional[tuple[np.ndarray, np.ndarray]]]:
    """Per row, the face to paste (float RGB, colour-matched when asked) and its mask, or None:
    no face, or a mask that cannot be drawn. `head` masks are averaged along the track, so this
    reads a few rows ahead of what it yields (of the arrays, never of the frames)."""
    faces, masks = [], []

    def rows_prepared() -> Iterator[Optional[np.ndarray]]:
        face_row = 0
        for j, row in enumerate(rows.itertuples(index=False)):
            faces.append(None)
            if not row.face:
                yield None
                continue
            face = np.asarray(translated[face_row], dtype=np.float32) / 255.0
            face_row += 1
            box, size = (row.cx, row.cy, row.size), face.shape[0]
            points = None if landmarks is None else landmarks[j]
            source = None if crops is None else \
                resize_square(np.asarray(crops[row.crop_index]), size).astype(np.float32) / 255
            if params.mask != "head":
                mask = window_mask(box, points, params)
                if mask is not None and params.color_match:
                    face = match_color(face, source, resize_square(mask, size))
                faces[-1] = face
                yield mask
                continue
            x0, y0, side = crop_window(*box)
            if points is None or not landmarks_usable(points, (x0, y0), side):
                yield None
                continue
            points = _in_crop(points, box, size)
            mask = head_weights(face, source, points, params.head_change)
            if params.color_match:
                face = match_color(face, source, hull_mask(points, (0, 0), size).astype(np.float32))
            faces[-1] = face
            yield mask

    masks = rows_prepared()
    if params.mask == "head":
        masks = (None if m is None else soften(m)
                 for m in along_track(masks, rows["frame"], rows["shot"], params.head_time_sigma))
    for j, mask in enumerate(masks):
        yield None if mask is None else (faces[j], mask)
        faces[j] = None  # let go of the face once pasted


def merged_frames(frames: Iterable[np.ndarray], rows: pd.DataFrame, translated: np.ndarray,
                  crops: Optional[np.ndarray], landmarks: Optional[np.ndarray],
                  params: MergeParams) -> Iterator[np.ndarray]:
    """Yield each frame of `rows` (one video's test rows of boxes.csv, in frame order) with its face replaced.

    `frames` holds the frame of each row, in the same order (`Frames.iter_at(rows["frame"])`), and is
    not written to; `translated[i]` is the face of the i-th row with a face; `crops` is the crop array
    the rows' `crop_index` points into (the translator's input: colour matching and the `head` mask
    compare with it); `landmarks[j]` are the landmarks of row j (`load_landmarks`; the `face` and
    `head` masks need them). A frame without a face, or whose mask cannot be drawn, is yielded unchanged.
    """
    pasted = pasted_faces(rows, translated, crops, landmarks, params)
    for row, frame, paste in zip(rows.itertuples(index=False), frames, pasted, strict=True):
        yield frame if paste is None else paste_face(frame, paste[0], (row.cx, row.cy, row.size), paste[1], params.blend)


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
    return {int(candidates[i]) for i in evenly_spaced(len(candidates), count)}


@dataclasses.dataclass(frozen=True)
class MergeJob:
    """One test video, opened and checked: its frames and boxes.csv rows, each model's translated
    crops, the source crops and landmarks the masks need (crops: None when no mask or colour match
    reads them), its frame rate and the raw video whose audio it gets."""

    video: str
    frames: Frames
    rows: pd.DataFrame
    translated: dict[str, np.ndarray]
    crops: Optional[np.ndarray]
    landmarks: np.ndarray
    fps: float
    audio: Path


@dataclasses.dataclass(frozen=True)
class MergeOutputs:
    """Where merged videos go: a folder per model, the side-by-side videos, the contact sheets."""

    models: dict[str, Path]
    compare: Path
    sheets: Path


def merge_video(job: MergeJob, out: MergeOutputs, params: MergeParams) -> list[dict]:
    """Write `<video>.mp4` for each model, the side-by-side comparison and its contact sheet, frame by
    frame; return a row per model: the mean and largest share of frame pixels it changed.

    The audio of `job.audio` (the raw video) is copied for the time span of the rows: from the first
    frame's time to the last frame's time plus one frame.
    """
    video, frames, rows, translated, fps = job.video, job.frames, job.rows, job.translated, job.fps
    height, width = frames.shape[1:3]
    labels = ["input"] + [label(model) for model in translated]
    span = dict(audio_from=job.audio, audio_start=float(rows["time"].iloc[0]),
                audio_end=float(rows["time"].iloc[-1]) + 1.0 / fps, crf=params.crf,
                preset=params.preset)
    sheet_at, sheet = _sheet_positions(rows, params.sheet_frames), []
    inputs, *copies = itertools.tee(frames.iter_at(rows["frame"]), 1 + len(translated))  # one decode per frame
    streams = [merged_frames(copy, rows, translated[model], job.crops, job.landmarks, params)
               for model, copy in zip(translated, copies)]
    changed = np.zeros((len(translated), len(rows)))
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(VideoWriter(out.models[model] / f"{video}.mp4", fps, width, height, **span))
                   for model in translated]
        compare_shape = side_by_side([frames[0]] * len(labels), labels).shape
        compare = stack.enter_context(VideoWriter(out.compare / f"{video}.mp4", fps, compare_shape[1],
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
    with atomic_file(out.sheets / f"{video}.png") as tmp:
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
        translated = {model: load_crop_array(Path(d) / f"{video}.npy", "infer", faces)
                      for model, d in zip(models, translated_dirs)}
        crops = (load_crops(faces_dir, rows["domain"].iloc[0], "test")
                 if faces and (params.color_match or params.mask == "head") else None)
        jobs.append(MergeJob(video, frames, rows, translated, crops, load_landmarks(faces_dir, rows),
                             float(videos.loc[video, "fps"]), raw_dir / videos.loc[video, "file"]))
    changed = []
    with contextlib.ExitStack() as stack:
        out = MergeOutputs(models={model: stack.enter_context(atomic_dir(results_dir / model)) for model in models},
                           compare=stack.enter_context(atomic_dir(results_dir / "compare")),
                           sheets=stack.enter_context(atomic_dir(results_dir / "sheets")))  # only images: a DVC plots folder
        for job in jobs:
            changed += merge_video(job, out, params)
        with atomic_file(results_dir / CHANGED) as tmp:
            pd.DataFrame(changed, columns=CHANGED_COLUMNS).to_csv(tmp, index=False)
    return [job.video for job in jobs]
