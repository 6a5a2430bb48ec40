"""Where a translated face may change the frame: a weight in [0, 1] over the crop box window.

`square` is the whole box, feathered at its edges. `face` keeps the change to the face: the convex
hull of the 68 landmarks with each eyebrow point raised by half its distance from the eye point
below it, so the forehead is covered (faceswap's "extended" mask, plugins/extract/mask/extended.py),
then eroded and blurred by shares of the face size (DeepFaceLab's and faceswap's erode and blur
modifiers). Everything is drawn in source-frame pixels of the window the crop came from.

`head` carries what the translation changed around the face as well: hair, outline, chin. It is the
face hull joined with the region where the (colour-matched) translated crop differs from its source
crop by more than `change` (a level far above encoding noise), inside a soft ellipse over the head,
kept only where it is connected to the face (a changed patch of background elsewhere is left out).
It is drawn in crop pixels (`head_weights`), averaged along the face track over neighbouring frames
of one shot (`along_track`), then softened and faded out at the window's edges (`soften`), so the
change never ends in a straight seam where the window cuts through the hair.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Iterator, Optional

import cv2
import numpy as np

from pipeline.common.runs import follows

_BROWS = np.arange(17, 27)
_UNDER_BROWS = np.array([-1, 36, 37, 38, 39, 42, 43, 44, 45, -2])  # -1, -2: between the outer eye corner and the jaw
_SUBPIXEL = 4  # fillConvexPoly's fractional bits: the hull moves smoothly with sub-pixel landmarks


def feather_mask(size: int, feather: float) -> np.ndarray:
    """float32 [size, size] weights: 1 inside, a smooth ramp to 0 over `feather` * size at each edge."""
    index = np.arange(size)
    edge = ((np.minimum(index, size - 1 - index) + 0.5) / size).astype(np.float32)  # pixel centre to nearest edge
    ramp = np.clip(edge / feather, 0.0, 1.0) if feather > 0 else np.ones_like(edge)
    ramp = smoothstep(ramp)  # no visible kink where the ramp ends
    return np.outer(ramp, ramp)


def match_color(face: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Shift and scale `face`'s Lab channels to `reference`'s weighted mean and std (float RGB in [0, 1])."""
    lab = cv2.cvtColor(face, cv2.COLOR_RGB2Lab)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2Lab)
    w = (weight / weight.sum())[..., None]
    mean, ref_mean = (lab * w).sum((0, 1)), (ref * w).sum((0, 1))
    std = np.sqrt(((lab - mean) ** 2 * w).sum((0, 1)))
    ref_std = np.sqrt(((ref - ref_mean) ** 2 * w).sum((0, 1)))
    lab = (lab - mean) * (ref_std / np.maximum(std, 1e-3)) + ref_mean
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, and the cubic 3x^2 - 2x^3 between: a ramp with no kink at either end."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


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


# The head mask's ellipse, in face sizes (face_size: the landmarks' extent)
HEAD_CENTRE_RAISE = 0.15  # its centre sits this far above the landmarks' mean (the hair is above)
HEAD_RADII = (0.62, 0.90, 0.60)  # its half width, its height above the centre and below: head and hair, not the room
ELLIPSE_EDGE = 0.08  # its weights fall from 1 to 0 over this share of its radii
# ... and the rest in shares of the crop side
CHANGE_BLUR = 1 / 30  # sigma of the blur of the colour difference before it is thresholded
SOFTEN_BLUR = 1 / 100  # sigma of the final blur of the mask's edge
EDGE_FADE = 0.08  # share of the window over which the mask fades out at its edges
WEIGHT_FLOOR = 0.02  # weights below this become 0 (the rest rescaled): the blurs' far tails change no pixel


def head_ellipse(landmarks: np.ndarray, side: int) -> np.ndarray:
    """float32 [side, side]: 1 well inside the head ellipse of face `landmarks` (crop pixels),
    falling smoothly to 0 at its rim."""
    size = face_size(landmarks)
    centre = landmarks.mean(axis=0) - (0.0, HEAD_CENTRE_RAISE * size)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    height = np.where(y < centre[1], HEAD_RADII[1], HEAD_RADII[2]) * size
    radius = np.sqrt(((x - centre[0]) / (HEAD_RADII[0] * size)) ** 2 + ((y - centre[1]) / height) ** 2)
    return smoothstep((1.0 - radius) / ELLIPSE_EDGE).astype(np.float32)


def head_weights(translated: np.ndarray, source: np.ndarray, landmarks: np.ndarray, change: float) -> np.ndarray:
    """float32 [S, S] weights of the `head` mask of one crop, before smoothing along the track.

    `translated` and `source` are float RGB [S, S, 3] in [0, 1], the face's `landmarks` [68, 2]
    in their pixels. The translation's colours are first matched to the source's outside the
    head ellipse, so a colour cast the model gave the whole background does not count as a change.
    A pixel then belongs to the head where the face hull covers it, or where the translation
    changed it by more than `change` (mean over channels, after a blur, a smooth step from
    `change` to twice it) inside the head ellipse, in a region that touches the hull.
    """
    side = translated.shape[0]
    hull = hull_mask(landmarks, (0, 0), side)
    ellipse = head_ellipse(landmarks, side)
    translated = match_color(translated, source, 1.0 - ellipse)
    difference = cv2.GaussianBlur(np.abs(translated - source).mean(axis=2), (0, 0), CHANGE_BLUR * side)
    changed = smoothstep((difference - change) / change) * ellipse
    region = np.maximum(changed, hull.astype(np.float32))
    _, labels = cv2.connectedComponents((region >= 0.5).astype(np.uint8), connectivity=4)
    touching = np.unique(labels[(hull > 0) & (labels > 0)])
    return np.where(np.isin(labels, touching), region, np.minimum(region, hull)).astype(np.float32)


def soften(weights: np.ndarray) -> np.ndarray:
    """A mask's edge blurred, its weights faded to 0 at the edges of the window it covers, and the
    faint tails (below WEIGHT_FLOOR) set to 0, the rest stretched so that no step appears."""
    side = weights.shape[0]
    blurred = cv2.GaussianBlur(weights, (0, 0), SOFTEN_BLUR * side, borderType=cv2.BORDER_CONSTANT)
    faded = blurred * feather_mask(side, EDGE_FADE)
    return np.clip((faded - WEIGHT_FLOOR) / (1.0 - WEIGHT_FLOOR), 0.0, 1.0).astype(np.float32)


def along_track(masks: Iterable[Optional[np.ndarray]], frames: Iterable[int], shots: Iterable[int],
                sigma: float) -> Iterator[Optional[np.ndarray]]:
    """Each mask (crop pixels, same size) averaged with its neighbours up to 2 `sigma` frames
    away with Gaussian weights, over a run of consecutive frames of one shot that all have a mask;
    None (no mask) passes through and ends the run. Lazy: it holds 4 sigma + 1 masks at a time,
    so a video of any length streams through."""
    radius = int(math.ceil(2 * sigma)) if sigma > 0 else 0
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2) if radius else np.ones(1)
    run: deque = deque()  # (position in the run, mask) of the masks still needed
    started, done, last = 0, 0, None  # masks in the run so far; masks of the run yielded; (shot, frame) of the last

    def ready(upto: int) -> Iterator[np.ndarray]:
        nonlocal done
        while done < upto:
            near = [(p, m) for p, m in run if abs(p - done) <= radius]
            w = np.array([weights[p - done + radius] for p, _ in near])
            yield np.tensordot(w / w.sum(), np.stack([m for _, m in near]), axes=1).astype(np.float32)
            done += 1
            while run and run[0][0] < done - radius:
                run.popleft()

    for mask, frame, shot in zip(masks, frames, shots):
        if mask is None or not follows(last, shot, frame):
            yield from ready(started)  # the run ended: its last masks have no later neighbours
            run.clear()
            started, done = 0, 0
        last = None if mask is None else (shot, frame)
        if mask is None:
            yield None
            continue
        run.append((started, mask))
        started += 1
        yield from ready(started - radius)
    yield from ready(started)
