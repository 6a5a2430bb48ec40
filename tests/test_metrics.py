"""Per-video scoring (pipeline.evaluate.metrics.evaluate_video) on real GRID crops."""
import numpy as np
import pandas as pd
import pytest
from helpers.translation_layout import MARGIN, grid_crops

from pipeline.evaluate.metrics import INPUT, Translation, describe_real_faces, evaluate_video, psnr_over_frames
from pipeline.evaluate.motion_fidelity import FaceMotion
from pipeline.face.identity import FaceDescriber
from pipeline.models.size import at_model_size

FRAMES = 25  # >= motion_fidelity.MIN_FRAMES


def test_the_input_row_is_scored_as_the_models_were_given_it(samples):
    """Test crops are 72 px and the models translate them at 64 (the demo profile): a model that
    returns exactly what it was given must score the input row's warping error, the floor."""
    a, b = samples / "A" / "sbat6n.mpg", samples / "B" / "brbk7n.mpg"
    inputs = grid_crops(a, FRAMES, size=72)
    given = at_model_size(inputs, 64)
    faces = pd.DataFrame({"video": "sbat6n", "domain": "A", "frame": np.arange(FRAMES), "shot": 0})
    describe = FaceDescriber("crop", margin=MARGIN)
    real = describe_real_faces({"A": (a, inputs), "B": (b, grid_crops(b, FRAMES, size=72))}, describe, None)
    frozen = np.repeat(given[:1], FRAMES, axis=0)
    translated = {"cyclegan": Translation(given, given), "cyclegan+flow": Translation(frozen, given, given)}
    rows, _ = evaluate_video(faces, inputs, translated, describe, real, 4, FaceMotion(216, describe.centre))
    source, model, steady = rows
    assert [row["model"] for row in rows] == [INPUT, "cyclegan", "cyclegan+flow"]
    assert source["warping_error"] > 0 and model["warping_error"] == source["warping_error"]
    assert model["drift"] == source["drift"] > source["warping_error"]  # 5 frames apart: more change than 1
    assert model["tof"] == 0 and np.isinf(model["psnr"])
    assert model["mouth_motion"] == source["mouth_motion"] == 1
    assert "raw_psnr" not in model
    # a "stabilised" row that froze the face: no mouth motion, and far from the translation it came from
    assert steady["mouth_motion"] == 0 and steady["raw_psnr"] < 32  # measured 28.7 dB


def test_psnr_to_raw_over_videos_is_that_of_all_their_frames():
    """The stabiliser leaves a steady video identical (inf dB) and changes another: the overall figure
    is the PSNR over all their frames, not an infinite mean of decibels."""
    videos = pd.DataFrame({"raw_psnr": [np.inf, 40.0, 30.0, np.nan], "frames": [50, 25, 25, 75]})
    assert psnr_over_frames(videos[:2], "raw_psnr") == pytest.approx(40 + 10 * np.log10(3))
    assert psnr_over_frames(videos[1:3], "raw_psnr") == pytest.approx(-10 * np.log10((1e-4 + 1e-3) / 2))
    assert psnr_over_frames(videos[:1], "raw_psnr") == np.inf
    assert np.isnan(psnr_over_frames(videos[3:], "raw_psnr"))
