"""Face crops as a model of a given crop size is given them, back in uint8.

The infer stage resizes each stored crop whole to the model's size (`runtime.to_model_input`); the
stabiliser follows the motion of these crops, and the metrics score against them, so a
reconstruction or a warping error is measured on the model's real input, not another resampling.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.common.device import to_model_input, to_uint8


def at_model_size(crops: np.ndarray, size: int, chunk: int = 64) -> np.ndarray:
    """Crops [N, S, S, 3] uint8 as the model was given them at `size` px ([N, size, size, 3] uint8)."""
    if crops.shape[1:3] == (size, size):
        return crops
    return np.concatenate([to_uint8(to_model_input(torch.from_numpy(np.ascontiguousarray(crops[i:i + chunk])), size))
                           for i in range(0, len(crops), chunk)])
