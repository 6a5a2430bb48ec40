"""How well A->B->A returns the input: PSNR over the clip and SSIM (scikit-image) averaged over frames.

A perfect cycle gives identical frames, whose PSNR is infinite: it is kept as inf here and
written as null in JSON, which has no infinity.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(reference: np.ndarray, image: np.ndarray, chunk: int = 16) -> float:
    """PSNR (dB, peak 255) of uint8 frames `image` [N, H, W, 3] against `reference`, from the mean
    squared error over all frames: inf when they are identical, NaN when there are none. The squared
    errors are summed exactly, `chunk` frames at a time, so memory does not grow with the clip."""
    if not len(reference):
        return float("nan")
    total = 0
    for start in range(0, len(reference), chunk):
        difference = (reference[start:start + chunk].astype(np.int64) - image[start:start + chunk]).ravel()
        total += int(np.dot(difference, difference))
    mse = total / reference.size
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """Mean over frames of SSIM (Wang et al. 2004, scikit-image's 7x7 window) on RGB uint8 frames."""
    scores = [structural_similarity(r, i, channel_axis=-1, data_range=255) for r, i in zip(reference, image)]
    return float(np.mean(scores)) if scores else float("nan")
