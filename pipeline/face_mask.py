"""Where a translated face may change the frame: a weight in [0, 1] over the crop box window.

`square` is the whole box, feathered at its edges. `face` keeps the change to the face: the convex
hull of the 68 landmarks with each eyebrow point raised by half its distance from the eye point
below it, so the forehead is covered (faceswap's "extended" mask, plugins/extract/mask/extended.py),
then eroded and blurred by shares of the face size (DeepFaceLab's and faceswap's erode and blur
modifiers). Everything is drawn in source-frame pixels of the window the crop came from.
"""
from __future__ import annotations

import cv2
import numpy as np

_BROWS = np.arange(17, 27)
_UNDER_BROWS = np.array([-1, 36, 37, 38, 39, 42, 43, 44, 45, -2])  # -1, -2: between the outer eye corner and the jaw
_SUBPIXEL = 4  # fillConvexPoly's fractional bits: the hull moves smoothly with sub-pixel landmarks


def feather_mask(size: int, feather: float) -> np.ndarray:
    """float32 [size, size] weights: 1 inside, a smooth ramp to 0 over `feather` * size at each edge."""
    index = np.arange(size)
    edge = ((np.minimum(index, size - 1 - index) + 0.5) / size).astype(np.float32)  # pixel centre to nearest edge
    ramp = np.clip(edge / feather, 0.0, 1.0) if feather > 0 else np.ones_like(edge)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no visible kink where the ramp ends
    return np.outer(ramp, ramp)


def face_outline(landmarks: np.ndarray) -> np.ndarray:
    """The jaw (points 0-16) and the eyebrows (17-26) raised over the forehead: [27, 2] outline points."""
    points = np.asarray(landmarks, dtype=np.float64)
    under = points[np.clip(_UNDER_BROWS, 0, None)]
    under[0] = ((points[36] + points[0]) / 2 + points[36]) / 2  # a quarter of the way from eye corner to jaw
    under[-1] = ((points[45] + points[16]) / 2 + points[45]) / 2
    raised = points[_BROWS] + 0.5 * (points[_BROWS] - under)
    return np.concatenate([points[:17], raised])


def face_size(landmarks: np.ndarray) -> float:
    """The face's extent in pixels: the larger side of the landmarks' bounding box."""
    return float(np.ptp(landmarks, axis=0).max())


def hull_mask(landmarks: np.ndarray, origin: tuple[int, int], side: int) -> np.ndarray:
    """uint8 [side, side] 0/1: the face outline's convex hull in the window at `origin` (x0, y0)."""
    hull = cv2.convexHull(np.rint((face_outline(landmarks) - origin) * 2 ** _SUBPIXEL).astype(np.int32))
    mask = np.zeros((side, side), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL)
    return mask


def blur_radius(landmarks: np.ndarray, blur: float) -> int:
    """Half the Gaussian kernel of the mask blur in pixels: how far past the eroded hull a change can reach."""
    return int(round(blur * face_size(landmarks) / 2))


def face_mask(landmarks: np.ndarray, origin: tuple[int, int], side: int, erode: float, blur: float) -> np.ndarray:
    """float32 [side, side] weights of the `face` mask: hull, eroded by `erode` * face size, blurred
    by a Gaussian `blur` * face size wide (exactly 0 beyond the eroded hull plus the blur radius)."""
    mask = hull_mask(landmarks, origin, side)
    erosion = int(round(erode * face_size(landmarks)))
    if erosion:
        mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erosion + 1, 2 * erosion + 1)))
    mask = mask.astype(np.float32)
    radius = blur_radius(landmarks, blur)
    if radius:
        mask = cv2.GaussianBlur(mask, (2 * radius + 1, 2 * radius + 1), radius / 3, borderType=cv2.BORDER_CONSTANT)
    return mask


def landmarks_usable(landmarks: np.ndarray, origin: tuple[int, int], side: int) -> bool:
    """Finite landmarks whose centre lies inside the window: a face the mask can be drawn for."""
    if not np.isfinite(landmarks).all():
        return False
    centre = landmarks.mean(axis=0) - origin
    return bool((centre >= 0).all() and (centre < side).all())


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (non-zero = inside)."""
    a, b = a > 0, b > 0
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
