"""Evaluate every model's translated test videos (docs/contracts.md, `infer`) against their inputs.

Scored twice. On the model's crops (`crops`): one row per test video and translation (per frame,
and stabilised where infer stabilises), plus a row `input` per video that scores the untranslated
crops the same way: its warping error is the floor a translator that follows the input's motion
can reach, and its identity figures are where the translation started from. On the merged result
videos (`merged`, what a viewer sees: pipeline.evaluate.merged_faces): one row per test video and model,
plus `input` cut the same way from the source frames. Overall figures per model and direction:
temporal and reconstruction means over videos (Lai et al. average videos); identity share and
Frechet distance from all described frames of that direction pooled.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.common.domains import DOMAINS, TARGET, direction, domains_of
from pipeline.common.errors import FacecycleError
from pipeline.common.params import MetricsParams
from pipeline.common.runs import consecutive_pairs
from pipeline.common.sampling import evenly_spaced
from pipeline.evaluate.definitions import DRIFT_GAP, MEANS_OVER_VIDEOS, OVER_FRAMES, SCORED
from pipeline.evaluate.identity_scores import centroid, frechet_distance, identity_transfer
from pipeline.evaluate.merged_faces import cut_faces, in_chunks, result_frames
from pipeline.evaluate.motion_fidelity import FaceMotion, motion_fidelity
from pipeline.evaluate.reconstruction import psnr, ssim
from pipeline.face.identity import FaceDescriber
from pipeline.models import MODELS
from pipeline.models.size import at_model_size
from pipeline.store.faces import faceless_videos, load_crop_array, load_crops, read_boxes
from pipeline.store.frames import load_frames, read_videos
from pipeline.store.tables import read_json
from pipeline.translate.stabilise import TEMPORAL
from pipeline.translate.temporal import input_motion, temporal_scores

INPUT = "input"  # the reference row: the untranslated test crops


def test_faces(test_rows: pd.DataFrame, faces_dir: Path) -> pd.DataFrame:
    """The rows with a face of boxes.csv's test rows (`read_boxes`: ordered by video and frame, the
    order of `infer`)."""
    test = test_rows[test_rows["face"]]
    if test.empty:
        raise FacecycleError(f"{faces_dir / 'boxes.csv'}: no test faces to evaluate")
    return test


@dataclass(frozen=True)
class RealFaces:
    """Descriptors of each domain's real train crops: the identity centroids and the realism reference."""

    descriptors: dict[str, np.ndarray]
    centroids: dict[str, np.ndarray]

    def score(self, descriptors: np.ndarray, domain: str) -> dict:
        """Identity transfer of faces translated from `domain`, and their Frechet distance to real target faces."""
        target = TARGET[domain]
        return {**identity_transfer(descriptors, self.centroids[target], self.centroids[domain]),
                "frechet": frechet_distance(descriptors, self.descriptors[target])}


def describe_real_faces(train: dict[str, tuple[Path, np.ndarray]], describe: FaceDescriber,
                        count: int | None) -> RealFaces:
    """Describe up to `count` evenly spaced crops of each domain's (path, train crops)."""
    descriptors, centroids = {}, {}
    for domain, (path, crops) in train.items():
        descriptors[domain] = describe(np.asarray(crops[evenly_spaced(len(crops), count)]), f"real {domain} faces")
        centroids[domain] = centroid(descriptors[domain], str(path))
    return RealFaces(descriptors, centroids)


@dataclass(frozen=True)
class Translation:
    """One row's crops: the translation scored, its reconstruction, and for a stabilised row the
    per-frame translation it was made from (the fidelity guard)."""

    output: np.ndarray
    rec: np.ndarray | None = None
    raw: np.ndarray | None = None


def evaluate_video(faces: pd.DataFrame, inputs: np.ndarray, translated: dict[str, Translation],
                   describe: FaceDescriber, real: RealFaces, every: int, motion_of: FaceMotion
                   ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Rows for the input and each model's translation of one video, and the descriptors of their
    every `every`-th frame. The input is scored at the models' crop size (the smallest, should
    they differ), as the model was given it: the like-for-like floor."""
    video, domain = faces["video"].iloc[0], faces["domain"].iloc[0]
    frame, shot = faces["frame"].to_numpy(), faces["shot"].to_numpy()
    sizes = sorted({t.output.shape[1] for t in translated.values()})
    given = {size: at_model_size(inputs, size) for size in sizes}  # the input as each model size saw it
    rows_of = {INPUT: Translation(given[sizes[0]]), **translated}
    temporal = {model: {} for model in rows_of}
    pairs, later = consecutive_pairs(frame, shot), consecutive_pairs(frame, shot, DRIFT_GAP)
    for size in sizes:  # each pair's input flow is computed once for every output of that size
        outputs = {model: t.output for model, t in rows_of.items() if t.output.shape[1] == size}
        with_rec = [model for model in outputs if rows_of[model].rec is not None]
        for model, scores in temporal_scores(outputs, input_motion(given[size], pairs), with_rec).items():
            temporal[model].update(scores, pairs=len(pairs))
        for model, scores in temporal_scores(outputs, input_motion(given[size], later, DRIFT_GAP)).items():
            temporal[model]["drift"] = scores["warping_error"]
    measured: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (crops, descriptors, motion series)

    def faces_of(crops: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors and mouth/eye series of `crops`, measured once for equal arrays (the input at
        its size and its row; a stabilised translation the stabiliser left as it was)."""
        for known, descriptors, series in measured:
            if known is crops or np.array_equal(known, crops):
                return descriptors, series
        measured.append((crops, describe(crops[::every], f"{name} {video}"), motion_of(crops, f"landmarks {name} {video}")))
        return measured[-1][1:]

    moves = {size: faces_of(given[size], INPUT)[1] for size in sizes}
    rows, described = [], {}
    for model, t in rows_of.items():
        output = t.output
        size = output.shape[1]
        described[model], series = faces_of(output, model)
        motion = motion_fidelity(series, moves[size], shot)
        row = _row(faces, "crops", model, temporal[model], motion, real.score(described[model], domain))
        if t.rec is not None:
            row.update(tof=temporal[model]["tof"], psnr=psnr(given[size], t.rec), ssim=ssim(given[size], t.rec))
        if t.raw is not None:
            row["raw_psnr"] = psnr(t.raw, output)
        rows.append(row)
    return rows, described


def _row(faces: pd.DataFrame, scored: str, model: str, temporal: dict, motion: np.ndarray, identity: dict) -> dict:
    """One row of the per-video table: what was scored, and its temporal, motion and identity figures."""
    domain = faces["domain"].iloc[0]
    return {"scored": scored, "video": faces["video"].iloc[0], "domain": domain, "direction": direction(domain),
            "model": model, "frames": len(faces), "pairs": temporal["pairs"], "warping_error": temporal["warping_error"],
            "drift": temporal["drift"], "mouth_motion": motion[0], "eye_motion": motion[1], **identity}


@dataclass(frozen=True)
class CutFaces:
    """One video's faces cut from whole frames: at the crops' size for the temporal figures, and at
    the describer's face size (the face's own resolution, resampled once) the mouth and eye series
    of every frame and the descriptors of every k-th."""

    small: np.ndarray        # [N, S, S, 3] uint8
    motion: np.ndarray       # [N, 2] mouth and eye opening
    descriptors: np.ndarray  # [ceil(N / k), 128]


def cut_and_describe(frames, rows: pd.DataFrame, crop_size: int, describe: FaceDescriber, motion_of: FaceMotion,
                     every: int, desc: str) -> CutFaces:
    """`CutFaces` of the face rows of `rows` (one video's test rows, faces or not) from `frames`,
    one frame per row, a chunk of faces at a time."""
    small, motion, described, done = [], [], [], 0
    for crops, faces in in_chunks(cut_faces(frames, rows, (crop_size, describe.face_size))):
        small.append(crops)
        motion.append(motion_of(faces, f"landmarks {desc}"))
        described.append(describe(faces[(-done) % every::every], desc))
        done += len(faces)
    return CutFaces(np.concatenate(small), np.concatenate(motion), np.concatenate(described))


def evaluate_merged_video(rows: pd.DataFrame, source, results: dict[str, Path], crop_size: int,
                          describe: FaceDescriber, real: RealFaces, every: int, motion_of: FaceMotion
                          ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Rows for the source and each model's merged result of one video (`rows`: its test rows, in
    frame order; `source`: its frames; `results`: {model: result video}), and their descriptors."""
    video, faces = rows["video"].iloc[0], rows[rows["face"]]
    cuts = {INPUT: cut_and_describe(source.iter_at(rows["frame"]), rows, crop_size, describe, motion_of, every,
                                    f"source {video}")}
    for model, path in results.items():
        cuts[model] = cut_and_describe(result_frames(path, len(rows)), rows, crop_size, describe, motion_of, every,
                                       f"merged {model} {video}")
    frame, shot = faces["frame"].to_numpy(), faces["shot"].to_numpy()
    pairs, later = consecutive_pairs(frame, shot), consecutive_pairs(frame, shot, DRIFT_GAP)
    small = {model: cut.small for model, cut in cuts.items()}
    temporal = temporal_scores(small, input_motion(small[INPUT], pairs))
    drift = temporal_scores(small, input_motion(small[INPUT], later, DRIFT_GAP))
    out = []
    for model, cut in cuts.items():
        figures = dict(temporal[model], pairs=len(pairs), drift=drift[model]["warping_error"])
        motion = motion_fidelity(cut.motion, cuts[INPUT].motion, shot)
        out.append(_row(faces, "merged", model, figures, motion, real.score(cut.descriptors, faces["domain"].iloc[0])))
    return out, {model: cut.descriptors for model, cut in cuts.items()}


def psnr_over_frames(videos: pd.DataFrame, column: str) -> float:
    """The PSNR (dB) of the videos' mean squared error weighted by their frames: the PSNR over all their
    frames, as for one clip. A mean of decibels would be infinite as soon as one video is left
    identical, however much the others changed. NaN where the column has no value."""
    scored = videos.dropna(subset=[column])
    if scored.empty:
        return float("nan")
    error = np.average(10 ** (-scored[column].to_numpy(float) / 10), weights=scored["frames"].to_numpy(float))
    return float(-10 * np.log10(error)) if error > 0 else float("inf")


def overall_figures(videos: pd.DataFrame, described: dict[tuple[str, str], list[np.ndarray]], real: RealFaces) -> dict:
    """{model: {direction: figures}}: means over videos (PSNR to raw over all their frames),
    identity from the pooled descriptors."""
    overall: dict = {}
    for (model, way), parts in described.items():
        group = videos[(videos["model"] == model) & (videos["direction"] == way)]
        means = group[[c for c in MEANS_OVER_VIDEOS if c in group]].mean().dropna().to_dict()  # figures the rows have
        for column in (m for m in OVER_FRAMES if m in group and group[m].notna().any()):
            means[column] = psnr_over_frames(group, column)
        overall.setdefault(model, {})[way] = {"videos": len(group), "frames": int(group["frames"].sum()), **means,
                                              **real.score(np.concatenate(parts), domains_of(way)[0])}
    return overall


@dataclass(frozen=True)
class Evaluation:
    """Per-video rows and overall figures, with what the report needs to say how they were made."""

    videos: pd.DataFrame  # one row per (scored, video, model)
    overall: dict         # {scored: {model: {direction: {metric: value}}}}
    params: MetricsParams
    real_faces: dict      # {domain: train crops described for its centroid}
    temporal: dict        # {model: infer's temporal.json}: which mode the merged videos show
    faceless: list        # test videos without a face: their results are the source


def temporal_mode(model_dir: Path) -> dict:
    """The infer stage's temporal.json of a model folder: which temporal mode `<video>.npy` holds."""
    path = model_dir / TEMPORAL
    return read_json(path, "infer", {"temporal": str})


def _translations(folder: Path, model: str, video: str, count: int, mode: str) -> dict[str, Translation]:
    """The rows of one model and video: `model` (per frame) and, when infer stabilised it,
    `model+mode` (what the merged videos show)."""
    load = lambda suffix: load_crop_array(folder / f"{video}{suffix}.npy", "infer", count)  # noqa: E731
    if mode == "none":
        return {model: Translation(load(""), load("_rec"))}
    raw = load("_raw")
    return {model: Translation(raw, load("_raw_rec")), f"{model}+{mode}": Translation(load(""), load("_rec"), raw)}


def open_videos(faces_dir: Path, test_rows: pd.DataFrame, translated_dir: Path, models: tuple[str, ...]
                ) -> tuple[list[tuple], dict]:
    """(face rows, input crops, {row: Translation}) of every test video (`test_rows`: boxes.csv's),
    all checked before any work starts so that a missing or short file fails in a second; and each
    model's temporal mode."""
    test = test_faces(test_rows, faces_dir)
    modes = {model: temporal_mode(translated_dir / model) for model in models}
    videos = []
    for video, faces in test.groupby("video", sort=True):
        domain = faces["domain"].iloc[0]
        crops, index = load_crops(faces_dir, domain, "test"), faces["crop_index"].to_numpy()
        if index.min() < 0 or index.max() >= len(crops):
            raise FacecycleError(f"{faces_dir / 'boxes.csv'}: crop_index of {video} out of range for "
                                 f"{faces_dir / f'{domain}_test.npy'} ({len(crops)} crops)")
        translated = {}
        for model in models:
            translated.update(_translations(translated_dir / model, model, video, len(faces),
                                            modes[model]["temporal"]))
        consecutive = np.array_equal(index, np.arange(index[0], index[0] + len(index)))
        videos.append((faces, crops[index[0]:index[0] + len(index)] if consecutive else crops[index], translated))
    return videos, modes


@dataclass(frozen=True)
class MergedVideos:
    """Where the merged results and their sources are: merge_video's output and extract_frames' frame stores."""

    results_dir: Path
    frames_dir: Path

    @functools.cached_property
    def _listing(self) -> pd.DataFrame:
        return read_videos(self.frames_dir).set_index("name")

    def open(self, video: str, models: tuple[str, ...]) -> tuple:
        """(the source frames, {model: result video}) of one test video."""
        listing = self._listing
        if video not in listing.index:
            raise FacecycleError(f"{self.frames_dir / 'videos.csv'}: no video {video} (boxes.csv lists it)")
        frames, _ = load_frames(self.frames_dir, video, int(listing.loc[video, "frames"]))
        return frames, {model: self.results_dir / model / f"{video}.mp4" for model in models}


def evaluate(faces_dir: str | Path, translated_dir: str | Path, params: MetricsParams, margin: float,
             models: tuple[str, ...] = tuple(MODELS), merged: MergedVideos | None = None) -> Evaluation:
    """Score the test videos of `faces_dir/boxes.csv` for each model in `translated_dir/<model>/`,
    and, given `merged`, the faces of their merged result videos."""
    faces_dir, translated_dir = Path(faces_dir), Path(translated_dir)
    test_rows = read_boxes(faces_dir, "test")
    videos, modes = open_videos(faces_dir, test_rows, translated_dir, models)
    train = {d: (faces_dir / f"{d}_train.npy", load_crops(faces_dir, d, "train")) for d in DOMAINS}
    describe = FaceDescriber(params.face_rect, params.face_size, margin)
    motion_of = FaceMotion(params.face_size, describe.centre)
    real = describe_real_faces(train, describe, params.centroid_frames)
    rows = []
    described: dict = {scored: {} for scored in SCORED}
    for _ in tqdm(range(len(videos)), desc="metrics", unit="video"):
        faces, inputs, translated = videos.pop(0)  # let go once scored: its mapped pages leave memory with it
        scored = {"crops": evaluate_video(faces, inputs, translated, describe, real, params.identity_every, motion_of)}
        if merged is not None:
            video = faces["video"].iloc[0]
            source, results = merged.open(video, models)
            crop_size = min(t.output.shape[1] for t in translated.values())
            scored["merged"] = evaluate_merged_video(test_rows[test_rows["video"] == video], source, results, crop_size,
                                                     describe, real, params.identity_every, motion_of)
        for kind, (video_rows, video_described) in scored.items():
            rows += video_rows
            for model, descriptors in video_described.items():
                described[kind].setdefault((model, video_rows[0]["direction"]), []).append(descriptors)
    table = pd.DataFrame(rows).sort_values(["scored", "direction", "video"], kind="stable", ignore_index=True)
    overall = {kind: overall_figures(table[table["scored"] == kind], described[kind], real)
               for kind in SCORED if described[kind]}
    return Evaluation(table, overall, params, {d: len(x) for d, x in real.descriptors.items()}, modes,
                      faceless_videos(test_rows))
