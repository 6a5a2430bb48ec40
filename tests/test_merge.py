"""Paste-back, masks, colour matching and video merge on real clips: frame count, fps, audio, identity
round trip, only the face changed, the changed-pixel table."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers.decoders import pyav_frames
from helpers.merge_inputs import write_models
from helpers.repo import REPO, over_shipped, shipped_params
from helpers.translation_layout import grid_crops

from pipeline.common.errors import FacecycleError
from pipeline.common.params import BLENDS, MASKS, MergeParams
from pipeline.evaluate.reconstruction import psnr
from pipeline.face.geometry import crop_window
from pipeline.face.mask import blur_radius, feather_mask, hull_mask, mask_iou, match_color
from pipeline.models import MODELS
from pipeline.store.faces import load_landmarks, read_boxes
from pipeline.store.frames import load_frames
from pipeline.translate.infer import translate_videos
from pipeline.translate.merge_video import merge_test_videos, merged_frames, paste_face, pasted_faces

pytestmark = pytest.mark.integration

PARAMS = shipped_params("merge", mask="face", mask_erode=0.05, mask_blur=0.1, blend="alpha", color_match=True, crf=18,
                     sheet_frames=4)
LABEL_HEIGHT = 28


def lab_stats(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted per-channel mean and std of an RGB float image in Lab."""
    lab, w = cv2.cvtColor(image, cv2.COLOR_RGB2Lab), (weight / weight.sum())[..., None]
    mean = (lab * w).sum((0, 1))
    return np.stack([mean, np.sqrt(((lab - mean) ** 2 * w).sum((0, 1)))])


@pytest.fixture(scope="module")
def translated(stage_inputs, tmp_path_factory):
    """infer's output for both (tiny, real) models."""
    root = tmp_path_factory.mktemp("run")
    for name, model in write_models(root / "models").items():
        translate_videos(model, stage_inputs["faces"], root / "translated" / name, batch_size=8,
                         device=torch.device("cpu"))
    return root / "translated"


def merge_stage(inputs: dict, translated: list[Path], out: Path, params: Path) -> subprocess.CompletedProcess:
    """stages/merge_video.py on the stage inputs and the given infer outputs."""
    return subprocess.run([sys.executable, str(REPO / "stages" / "merge_video.py"), "--frames", str(inputs["frames"]),
                           "--faces", str(inputs["faces"]), "--raw", str(inputs["raw"]),
                           "--translated", *map(str, translated), "--out", str(out), "--params", str(params)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(stage_inputs, translated):
    """The merge_video stage script run on the real inputs."""
    root = translated.parent
    (root / "params.yaml").write_text(yaml.safe_dump(over_shipped({"merge": dataclasses.asdict(PARAMS)})))
    result = merge_stage(stage_inputs, [translated / "cyclegan", translated / "recyclegan"], root / "results",
                         root / "params.yaml")
    assert result.returncode == 0, result.stderr
    return root / "results"


@pytest.fixture(scope="module")
def grid(stage_inputs):
    """The GRID test clip: its frames, its test rows of boxes.csv, its input crops (one per face row)
    and its landmarks (one per row)."""
    frames, _ = load_frames(stage_inputs["frames"], "sbat6n", 30)
    rows = read_boxes(stage_inputs["faces"], "test")
    rows = rows[rows["video"] == "sbat6n"]
    crops = np.load(stage_inputs["faces"] / "A_test.npy", mmap_mode="r")
    return frames, rows, crops, load_landmarks(stage_inputs["faces"], rows)


def test_feather_mask_fades_smoothly_to_the_edges():
    mask = feather_mask(100, 0.2)
    assert mask.shape == (100, 100) and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, mask.T)
    np.testing.assert_array_equal(mask, mask[::-1, ::-1])
    assert (mask[20:80, 20:80] == 1).all() and mask[0, 0] < 1e-3 and mask[0, 50] < 0.01
    assert (np.diff(mask[50, :50]) >= 0).all()
    assert (feather_mask(64, 0.0) == 1).all()


def test_match_color_moves_lab_statistics_to_the_reference(stage_inputs, grid):
    _, _, crops, _ = grid
    man = crops[0].astype(np.float32) / 255
    woman = np.load(stage_inputs["faces"] / "B_train.npy")[0].astype(np.float32) / 255
    weight = feather_mask(man.shape[0], 0.15)
    assert np.abs(match_color(man, man, weight) - man).max() < 1 / 255  # matching to itself: the Lab round trip, < 1 level
    matched = match_color(man, woman, weight)
    np.testing.assert_allclose(lab_stats(matched, weight), lab_stats(woman, weight), atol=1.5)
    assert np.abs(lab_stats(man, weight)[0] - lab_stats(woman, weight)[0]).max() > 3  # the match had work to do


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("color_match", [False, True])
def test_identity_translator_returns_the_input(grid, mask, blend, color_match):
    """translated = the crops themselves: resize back, mask, blend and colour match must undo the crop (> 40 dB)."""
    frames, rows, crops, landmarks = grid
    identity = crops[rows.loc[rows["face"], "crop_index"].to_numpy()]
    params = shipped_params("merge", mask=mask, blend=blend, color_match=color_match)
    merged = list(merged_frames(frames.iter_at(rows["frame"]), rows, identity, crops, landmarks, params))
    assert len(merged) == len(rows) == 30 and rows["face"].all()
    values = [psnr(out, frames[i]) for out, i in zip(merged, rows["frame"])]
    assert min(values) > 40, values
    assert any((out != frame).any() for out, frame in zip(merged, frames))  # it did paste


def test_face_mask_changes_only_the_face(stage_inputs, grid):
    """Another person's face pasted with the face mask: every pixel of the frames handed to the encoder
    outside the landmark hull, grown by the blur radius, is the decoded source pixel; inside, the face changed."""
    frames, rows, crops, landmarks = grid
    women = np.load(stage_inputs["faces"] / "B_train.npy")
    faces = women[np.arange(len(rows)) % len(women)]
    for blend in BLENDS:
        params = shipped_params("merge", mask="face", mask_erode=0.05, mask_blur=0.1, blend=blend)
        merged = merged_frames(frames.iter_at(rows["frame"]), rows, faces, crops, landmarks, params)
        for out, row, points, frame in zip(merged, rows.itertuples(), landmarks, frames, strict=True):
            height, width = frame.shape[:2]
            hull = hull_mask(points, (0, 0), max(height, width))[:height, :width]
            reach = np.ones((2 * blur_radius(points, params.mask_blur) + 1,) * 2, np.uint8)
            grown = cv2.dilate(hull, reach) > 0
            np.testing.assert_array_equal(out[~grown], frame[~grown])
            inner = cv2.erode(hull, reach) > 0
            assert np.abs(out[inner].astype(int) - frame[inner]).mean() > 5
            assert grown.sum() < 0.6 * row.size ** 2  # the face, not the crop box


@pytest.fixture(scope="module")
def woman(samples, grid):
    """A real translation stand-in for the GRID man's clip: consecutive frames of a GRID woman with
    long hair, cut around her face as crop_faces cuts (dlib box, margin 0.4), 64 px."""
    _, rows, _, _ = grid
    return grid_crops(samples / "B" / "brbk7n.mpg", len(rows), size=64)


def head_params(**changes) -> MergeParams:
    return shipped_params("merge", **{**dict(mask="head", head_change=0.05, head_time_sigma=1.5), **changes})


def test_head_mask_carries_her_hair_and_keeps_the_background(grid, woman):
    """Her face and hair pasted over the man with the head mask: it changes more than the face mask
    (her outline and hair), the window's top corners keep the source, nothing outside the window changes."""
    frames, rows, crops, landmarks = grid
    changed = {}
    for mask in ("face", "head"):
        merged = merged_frames(frames.iter_at(rows["frame"]), rows, woman, crops, landmarks, head_params(mask=mask))
        changed[mask] = []
        for out, row, frame in zip(merged, rows.itertuples(), frames, strict=True):
            x0, y0, side = crop_window(row.cx, row.cy, row.size)
            window = np.zeros(frame.shape[:2], bool)
            window[max(y0, 0):y0 + side, max(x0, 0):x0 + side] = True
            np.testing.assert_array_equal(out[~window], frame[~window])
            corner = side // 6
            for xs in (slice(x0, x0 + corner), slice(x0 + side - corner, x0 + side)):
                assert np.abs(out[y0:y0 + corner, xs].astype(int) - frame[y0:y0 + corner, xs]).mean() < 0.5
            changed[mask].append((np.abs(out.astype(int) - frame).max(axis=2) > 8).sum())
    assert np.mean(changed["head"]) > 1.3 * np.mean(changed["face"]), changed


def test_head_mask_is_steady_along_the_track(grid, woman):
    """Consecutive frames' head masks overlap (IoU of weights >= 0.5 above 0.95), more so averaged along the track."""
    _, rows, crops, landmarks = grid
    iou = {}
    for sigma in (0.0, 1.5):
        masks = [m for _, m in pasted_faces(rows, woman, crops, landmarks, head_params(head_time_sigma=sigma))]
        iou[sigma] = [mask_iou(a >= 0.5, b >= 0.5) for a, b in zip(masks, masks[1:])]  # one shot, no missing frame
    assert min(iou[0.0]) > 0.95 and min(iou[1.5]) > 0.95, iou
    assert np.mean(iou[1.5]) > np.mean(iou[0.0])


def test_face_without_usable_landmarks_passes_through(grid):
    """Rows whose landmarks are missing (NaN) or off the face box keep their frame; the others still change,
    each with its own translated face."""
    frames, rows, crops, landmarks = grid
    faces = np.ascontiguousarray(crops[rows["crop_index"].to_numpy()][:, ::-1])  # upside down: a visible change
    broken = landmarks.copy()
    broken[::3] = np.nan
    broken[1::3] += 1000.0  # far outside the crop window
    merged = merged_frames(frames.iter_at(rows["frame"]), rows, faces, crops, broken, PARAMS)
    for i, (out, frame) in enumerate(zip(merged, frames, strict=True)):
        if i % 3 < 2:
            np.testing.assert_array_equal(out, frame)
        else:
            assert (out != frame).any(axis=2).mean() > 0.03


def test_paste_changes_only_the_box(stage_inputs, grid):
    frames, rows, crops, _ = grid
    row = rows.iloc[0]
    woman = np.load(stage_inputs["faces"] / "B_train.npy")[0].astype(np.float32) / 255
    frame = np.asarray(frames[row["frame"]])
    x0, y0, side = crop_window(row["cx"], row["cy"], row["size"])
    out = paste_face(frame, woman, (row["cx"], row["cy"], row["size"]), feather_mask(side, 0.15), "alpha")
    outside = np.ones(frame.shape[:2], bool)
    outside[max(y0, 0):y0 + side, max(x0, 0):x0 + side] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    centre = (slice(y0 + side // 3, y0 + 2 * side // 3), slice(x0 + side // 3, x0 + 2 * side // 3))
    assert np.abs(out[centre].astype(int) - frame[centre]).mean() > 10


def test_paste_clips_a_box_that_leaves_the_frame(grid):
    frames, _, crops, _ = grid
    frame = np.asarray(frames[0])
    face = np.asarray(crops[0][::-1]).astype(np.float32) / 255
    out = paste_face(frame, face, (20.0, 250.0, 120.0), feather_mask(120, 0.15))  # lower-left
    assert out.shape == frame.shape
    np.testing.assert_array_equal(out[:, 80:], frame[:, 80:])
    np.testing.assert_array_equal(out[:190], frame[:190])
    assert (out[200:, :60] != frame[200:, :60]).any()


def stream_info(path):
    """Frame rate, size and decoded frame count of the video stream; audio duration and packet payloads."""
    with av.open(str(path)) as container:
        video, (audio,) = container.streams.video[0], container.streams.audio
        frames, packets = 0, []
        for packet in container.demux(video, audio):
            if packet.stream is video:
                frames += len(packet.decode())
            elif packet.size:
                packets.append(bytes(packet))
        duration = float(audio.duration * audio.time_base) if audio.duration else None
        return video.average_rate, (video.width, video.height), frames, duration, packets


@pytest.mark.parametrize("folder", ["cyclegan", "recyclegan", "compare"])
def test_merged_videos_keep_frame_count_fps_and_audio(results, stage_inputs, folder):
    for video, source, fps, frames, width, height in (("sbat6n", "sbat6n.mpg", 25, 30, 360, 288),
                                                      ("wall", "woman_occlusion_pexels.mp4", 24000 / 1001, 12, 160, 360)):
        rate, size, count, duration, packets = stream_info(results / folder / f"{video}.mp4")
        panels = 3 if folder == "compare" else 1
        assert (float(rate), count) == (pytest.approx(fps), frames)
        assert size == (width * panels, height + (LABEL_HEIGHT if folder == "compare" else 0))
        assert duration == pytest.approx(frames / fps, abs=0.05)
        source_packets = set(stream_info(stage_inputs["raw"] / source)[4])
        assert packets and all(p in source_packets for p in packets)  # the source audio, copied byte for byte


def test_merged_face_video_is_the_pasted_frames(results, translated, grid):
    frames, rows, crops, landmarks = grid
    expected = merged_frames(frames.iter_at(rows["frame"]), rows, np.load(translated / "cyclegan" / "sbat6n.npy"),
                             crops, landmarks, PARAMS)
    for out, want, source in zip(pyav_frames(results / "cyclegan" / "sbat6n.mp4"), expected, frames, strict=True):
        assert psnr(out, want) > 30  # H.264 at crf 18 of noisy MPEG-1 footage
        changed = (want != source).any(axis=2)
        assert changed.mean() > 0.04 and np.abs(want[changed].astype(int) - source[changed]).mean() > 10  # the face


def test_faceless_video_passes_through(results, stage_inputs):
    frames, _ = load_frames(stage_inputs["frames"], "wall", 12)
    rows = read_boxes(stage_inputs["faces"], "test")
    rows = rows[rows["video"] == "wall"]
    assert not rows["face"].any()
    unchanged = list(merged_frames(frames.iter_at(rows["frame"]), rows, np.zeros((0, 64, 64, 3), np.uint8), None,
                                   load_landmarks(stage_inputs["faces"], rows), PARAMS))
    np.testing.assert_array_equal(np.stack(unchanged), frames)
    for folder in ("cyclegan", "recyclegan"):
        out = pyav_frames(results / folder / "wall.mp4")
        assert len(out) == 12 and min(psnr(a, b) for a, b in zip(out, frames)) > 35


def test_compare_video_and_contact_sheet_show_input_and_both_models(results, translated, grid):
    frames, rows, crops, landmarks = grid
    compare = pyav_frames(results / "compare" / "sbat6n.mp4")
    assert psnr(compare[5][LABEL_HEIGHT:, :360], frames[5]) > 30
    assert compare[5][:LABEL_HEIGHT].max() > 200 and compare[5][:LABEL_HEIGHT].mean() < 60  # white text on black
    sheet = cv2.cvtColor(cv2.imread(str(results / "sheets" / "sbat6n.png")), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (LABEL_HEIGHT + 4 * 288, 3 * 360, 3)
    merged = {model: list(merged_frames(frames.iter_at(rows["frame"]), rows, np.load(translated / model / "sbat6n.npy"),
                                         crops, landmarks, PARAMS))
              for model in MODELS}
    for row, frame in enumerate((0, 10, 19, 29)):  # evenly spaced face frames, lossless in the PNG
        cells = sheet[LABEL_HEIGHT + row * 288:LABEL_HEIGHT + (row + 1) * 288]
        np.testing.assert_array_equal(cells[:, :360], frames[frame])
        np.testing.assert_array_equal(cells[:, 360:720], merged["cyclegan"][frame])
        np.testing.assert_array_equal(cells[:, 720:], merged["recyclegan"][frame])
    wall = cv2.imread(str(results / "sheets" / "wall.png"))
    assert wall.shape == (LABEL_HEIGHT + 4 * 360, 3 * 160, 3)


def test_changed_table_lists_the_share_of_pixels_each_model_changed(results, translated, grid):
    frames, rows, crops, landmarks = grid
    table = pd.read_csv(results / "changed.csv")
    assert list(table.columns) == ["video", "model", "frames", "changed_share", "changed_max"]
    assert set(zip(table["video"], table["model"])) == {(v, m) for v in ("sbat6n", "wall") for m in MODELS}
    wall = table[table["video"] == "wall"]
    assert (wall["changed_share"] == 0).all() and (wall["frames"] == 12).all()
    merged = merged_frames(frames.iter_at(rows["frame"]), rows, np.load(translated / "cyclegan" / "sbat6n.npy"),
                           crops, landmarks, PARAMS)
    shares = [(out != frame).any(axis=2).mean() for out, frame in zip(merged, frames)]
    row = table[(table["video"] == "sbat6n") & (table["model"] == "cyclegan")].iloc[0]
    assert row["changed_share"] == pytest.approx(np.mean(shares)) and row["changed_max"] == pytest.approx(max(shares))
    box_share = (rows["size"] ** 2).mean() / (360 * 288)
    assert 0.02 < row["changed_share"] < 0.5 * box_share  # the face, well under half of the crop box


def test_missing_translation_fails_before_writing_anything(stage_inputs, translated, tmp_path):
    (tmp_path / "cyclegan").mkdir()
    np.save(tmp_path / "cyclegan" / "sbat6n.npy", np.load(translated / "cyclegan" / "sbat6n.npy"))  # wall.npy missing
    with pytest.raises(FacecycleError, match=r"cyclegan/wall.npy: not found"):
        merge_test_videos(stage_inputs["frames"], stage_inputs["faces"], stage_inputs["raw"],
                          [tmp_path / "cyclegan"], tmp_path / "results", PARAMS)
    np.save(tmp_path / "cyclegan" / "wall.npy", np.load(translated / "cyclegan" / "sbat6n.npy")[:3])
    with pytest.raises(FacecycleError, match=r"wall.npy: 3 crops, but boxes.csv lists 0 faces for it"):
        merge_test_videos(stage_inputs["frames"], stage_inputs["faces"], stage_inputs["raw"],
                          [tmp_path / "cyclegan"], tmp_path / "results", PARAMS)
    assert not (tmp_path / "results").exists()


def test_stage_reports_a_missing_translation_in_one_line(stage_inputs, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped({"merge": {}})))
    result = merge_stage(stage_inputs, [tmp_path / "cyclegan"], tmp_path / "results", tmp_path / "params.yaml")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"merge_video: error: {tmp_path / 'cyclegan' / 'sbat6n.npy'}: not found (the infer stage writes it)"]
    assert not (tmp_path / "results").exists()
