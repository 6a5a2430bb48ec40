"""Per-video scoring (pipeline.metrics.evaluate_video) on real GRID crops."""
import numpy as np
import pandas as pd

from pipeline.identity import FaceDescriber
from pipeline.metrics import INPUT, at_model_size, describe_real_faces, evaluate_video
from translation_layout import MARGIN, grid_crops

FRAMES = 8


def test_the_input_row_is_scored_as_the_models_were_given_it(samples):
    """Test crops are 72 px and the models translate them at 64 (the demo profile): a model that
    returns exactly what it was given must score the input row's warping error, the floor."""
    a, b = samples / "A" / "sbat6n.mpg", samples / "B" / "brbk7n.mpg"
    inputs = grid_crops(a, FRAMES, size=72)
    given = at_model_size(inputs, 64)
    faces = pd.DataFrame({"video": "sbat6n", "domain": "A", "frame": np.arange(FRAMES), "shot": 0})
    describe = FaceDescriber("crop", margin=MARGIN)
    real = describe_real_faces({"A": (a, inputs), "B": (b, grid_crops(b, FRAMES, size=72))}, describe, None)
    rows, _ = evaluate_video(faces, inputs, {"cyclegan": (given, given)}, describe, real, every=4)
    source, model = rows
    assert (source["model"], model["model"]) == (INPUT, "cyclegan")
    assert source["warping_error"] > 0 and model["warping_error"] == source["warping_error"]
    assert model["tof"] == 0 and np.isinf(model["psnr"])
