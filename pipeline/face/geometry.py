"""The square face window in a frame: cut out by crop_faces, pasted back by merge_video, so
both agree to the pixel on where a crop came from."""
from __future__ import annotations

import math

import cv2
import numpy as np


def crop_window(cx: float, cy: float, size: float) -> tuple[int, int, int]:
    """Integer pixel window (x0, y0, side) of the square box centred at (cx, cy) with side `size`."""
    side = max(1, int(round(size)))
    return int(math.floor(cx - side / 2 + 0.5)), int(math.floor(cy - side / 2 + 0.5)), side


def crop_square(frame: np.ndarray, cx: float, cy: float, size: float, out_size: int) -> np.ndarray:
    """The square box cut from `frame` (edge pixels repeated where it leaves the frame), resized to out_size."""
    x0, y0, side = crop_window(cx, cy, size)
    height, width = frame.shape[:2]
    # a window wholly outside the frame would repeat the nearest edge: same as overlapping it by one pixel
    x0, y0 = min(max(x0, 1 - side), width - 1), min(max(y0, 1 - side), height - 1)
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    square = cv2.copyMakeBorder(np.asarray(frame[fy0:fy1, fx0:fx1]), fy0 - y0, y0 + side - fy1,
                                fx0 - x0, x0 + side - fx1, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side > out_size else cv2.INTER_LINEAR
    return cv2.resize(square, (out_size, out_size), interpolation=interpolation)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A square image at `size`: area averaging when shrinking (no aliasing), cubic when enlarging
    (the face describers and the pasted translations; the crops themselves are cut by crop_square)."""
    if image.shape[0] == size:
        return image
    interpolation = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)
