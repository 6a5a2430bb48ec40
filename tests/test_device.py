"""pipeline.runtime: where the networks run and how crops enter them, shared by training, infer and metrics."""
import numpy as np
import pytest
import torch

from pipeline.errors import FacecycleError
from pipeline.model_size import at_model_size
from pipeline.runtime import pick_device, to_model_input, to_uint8


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_asking_for_cuda_without_it_names_the_param():
    with pytest.raises(FacecycleError, match=r"params: infer\.device: cuda requested but no CUDA device"):
        pick_device("cuda", "infer.device")
    assert pick_device() == pick_device("cpu") == torch.device("cpu")


def test_crops_enter_the_model_in_range_and_come_back_unchanged(tiny_faces):
    """uint8 -> [-1, 1] -> uint8 is exact at the crop's own size (real GRID crops)."""
    crops = np.load(tiny_faces / "A_train.npy")[:4]
    x = to_model_input(torch.from_numpy(crops), crops.shape[1])
    assert x.shape == (4, 3, *crops.shape[1:3]) and -1 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(to_uint8(x), crops)


def test_metrics_score_reconstructions_against_the_very_input_the_model_got(tiny_faces):
    """metrics' reference at the model size is the infer stage's resize of the crop, not another filter."""
    crops = np.load(tiny_faces / "A_train.npy")[:70]  # more than one chunk of 64
    size = crops.shape[1] - 8
    reference = at_model_size(crops, size)
    np.testing.assert_array_equal(reference, to_uint8(to_model_input(torch.from_numpy(crops), size)))
    assert at_model_size(crops, crops.shape[1]) is crops
