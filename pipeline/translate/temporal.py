"""Temporal consistency of a translated clip, measured against the motion of its input clip.

Warping error (Lai et al., ECCV 2018, `evaluate_WarpError.py`): the optical flow from input
frame t to t+1 warps output frame t+1 back onto frame t; the mean squared difference to output
frame t, over pixels that the forward-backward check (Ruder et al., GCPR 2016) keeps, frames in
[0, 1]. A translator that follows the input's motion scores like the input itself; flicker adds
error. tOF (TecoGAN, Chu et al. 2020): the mean length of the difference between the output's
own flow and the input's flow. Flow is OpenCV's Farneback with TecoGAN's settings: no learned
flow weights are available offline. Pairs never straddle a missing frame or a shot cut.
"""
from __future__ import annotations

import functools
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

# TecoGAN's metric code: calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def optical_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Farneback flow [H, W, 2] (dx, dy in pixels) from uint8 RGB image `prev` to `nxt`."""
    gray = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in (prev, nxt)]
    return cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, **_FARNEBACK)


@functools.lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """[H, W, 2] (x, y) of every pixel, read-only: warp adds a flow to it, and the stabiliser warps
    many times per frame."""
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=-1)
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at x + flow(x): brings frame t+1 onto frame t with the flow from t to t+1."""
    return cv2.remap(image, _pixel_grid(*flow.shape[:2]) + flow, None, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _squared_length(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def valid_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose motion is trustworthy: Lai et al.'s `detect_occlusion`, inverted.

    Occluded where the forward flow and the backward flow met at x + forward(x) do not cancel
    (|f + b|^2 > 0.01 (|f|^2 + |b|^2) + 0.5), or on a motion boundary (squared flow gradient
    > 0.01 |f|^2 + 0.002); pixels whose target leaves the frame are dropped as well.
    """
    h, w = forward.shape[:2]
    back = warp(backward, forward)
    mag = _squared_length
    occluded = mag(forward + back) > 0.01 * (mag(forward) + mag(back)) + 0.5
    grad = np.zeros((h, w), np.float32)
    grad[:, :-1] += mag(forward[:, :-1] - forward[:, 1:])
    grad[:-1, :] += mag(forward[:-1, :] - forward[1:, :])
    boundary = grad > 0.01 * mag(forward) + 0.002
    x = np.arange(w, dtype=np.float32) + forward[..., 0]
    y = np.arange(h, dtype=np.float32)[:, None] + forward[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ~occluded & ~boundary & inside


@dataclass(frozen=True)
class Motion:
    """An input clip and its usable pairs (i, i+gap). Iterating computes each pair's flow and valid
    mask in turn, so scoring a clip holds one pair's flow at a time, however long the clip."""

    frames: np.ndarray  # [N, H, W, 3] uint8
    pairs: np.ndarray   # [P] index i of each pair (i, i+gap)
    gap: int = 1

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(i, forward flow from frame i to i+gap, valid_mask) for each pair."""
        for i in self.pairs:
            forward = optical_flow(self.frames[i], self.frames[i + self.gap])
            backward = optical_flow(self.frames[i + self.gap], self.frames[i])
            yield int(i), forward, valid_mask(forward, backward)


def input_motion(frames: np.ndarray, pairs: np.ndarray, gap: int = 1) -> Motion:
    """The motion of the input `frames` [N, H, W, 3] uint8 over `pairs` (i, i+gap)."""
    return Motion(frames, np.asarray(pairs, np.int64), gap)


def temporal_scores(outputs: dict[str, np.ndarray], motion: Motion, tof_of: Collection[str] = ()
                    ) -> dict[str, dict[str, float]]:
    """{name: {"warping_error": ..., "tof": ...}} of each output [N, H, W, 3] uint8 along the input's
    motion, each pair's input flow computed once for all outputs; tOF only for the names in `tof_of`.

    Warping error (Lai et al.), per pair: squared differences over valid pixels and channels,
    divided by their count (all pixels when none is valid); with a gap of several frames it says
    how far the output drifts from the input's motion over that span. tOF (TecoGAN): mean per-pixel
    length of flow(output pair) - flow(input pair). A clip's value is the mean over its pairs (NaN if none).
    """
    errors = {name: [] for name in outputs}
    flow_errors = {name: [] for name in outputs if name in tof_of}
    for i, forward, valid in motion:
        for name, output in outputs.items():
            errors[name].append(pair_warping_error(output[i], output[i + motion.gap], forward, valid))
            if name in flow_errors:
                flow_errors[name].append(pair_tof(output[i], output[i + motion.gap], forward))
    scores = {name: {"warping_error": _mean(errors[name])} for name in outputs}
    for name, values in flow_errors.items():
        scores[name]["tof"] = _mean(values)
    return scores


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def pair_warping_error(prev: np.ndarray, nxt: np.ndarray, forward: np.ndarray, valid: np.ndarray) -> float:
    """Warping error of one output pair (uint8 frames) along the input's flow `forward` of that pair."""
    warped = warp(nxt.astype(np.float32) / 255, forward)
    diff = (warped - prev.astype(np.float32) / 255)
    return float(np.mean((diff[valid] if valid.any() else diff) ** 2))


def pair_tof(prev: np.ndarray, nxt: np.ndarray, forward: np.ndarray) -> float:
    """tOF of one output pair: mean per-pixel length of its own flow minus the input's `forward`."""
    return float(np.linalg.norm(optical_flow(prev, nxt) - forward, axis=-1).mean())


def warping_error(output: np.ndarray, motion: Motion) -> float:
    """Lai et al.'s warping error of one output (temporal_scores)."""
    return temporal_scores({"output": output}, motion)["output"]["warping_error"]


def tof(output: np.ndarray, motion: Motion) -> float:
    """TecoGAN's tOF of one output (temporal_scores)."""
    return temporal_scores({"output": output}, motion, tof_of={"output"})["output"]["tof"]
