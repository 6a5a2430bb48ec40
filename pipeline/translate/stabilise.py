"""Make a per-frame translator's crops follow the input's motion (blind video temporal consistency).

A translator that sees one frame at a time paints slightly different details in every frame:
flicker (Bonneel et al., SIGGRAPH Asia 2015, and Lai et al., ECCV 2018, remove it after the fact
with the input video's motion). Here each translated frame t becomes a weighted mean of the
translated frames t-w..t+w of its segment, each warped onto frame t along the INPUT crops' optical
flow. A neighbour's pixel counts as far as the INPUT neighbour, warped the same way, matches input
frame t near there (a Gaussian of their squared difference, averaged over 3x3 px and the largest
within 5x5 px), and at most exp(-k^2 / (2 tau^2)) k frames away: the flow to a far frame is
composed over k pairs and errs more. Where the input changed (the mouth opens), or the flow is
wrong (occlusion, a face leaving the crop), the neighbours get no weight and frame t keeps its own
translation: real change is kept, output change where the input stood still (flicker) is averaged
away. This one photometric test stands in for a forward-backward flow check (which measured no
better, and needs a second flow per pair).

How large an input change still counts as "stood still" depends on how hard the translator
flickers: an input change smaller than the output's flicker cannot be told from it. So the
tolerance is `strength` times the translator's flicker on the shot: the output's change between
consecutive frames (the later one warped onto the earlier) beyond the input's own change through
the same warp (sensor noise, the warp's interpolation), over the pixels where the input changed by
less than `still`, median over the shot's pairs. One tolerance per shot treats its frames alike
(a tolerance per frame leaves softer and sharper stretches, which dlib's landmark fit reads as a
change of mouth opening), and a translator that changes no more than its input on the typical
frame of a shot is left as it is: averaging it would only blur the face.

Each frame averages raw translations only, never earlier results, so nothing accumulates over a
shot (no drift), and a window never crosses a scene cut or a gap in the face track.

The flow is OpenCV's DIS (Kroeger et al., ECCV 2016), not the Farneback flow with which the
metrics' warping error judges the output: stabilising along the judge's own flow would flatter it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np

from pipeline.common.runs import segments
from pipeline.translate.temporal import warp

if TYPE_CHECKING:
    from pipeline.common.params import InferParams

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}  # the names of params.FLOW_PRESETS
TEMPORAL = "temporal.json"  # infer writes it beside the crops: which temporal mode <video>.npy holds
SPREAD = 5  # side of the square over which the largest input change near a pixel is taken
_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)  # cv2.transform matrix: [H, W, 3] -> their mean [H, W]


class FlowCache:
    """Flow between input frames i and j (uint8 RGB), each pair computed once while in use: DIS between
    neighbours, composed along the frames between them for farther pairs (one DIS flow per pair of
    neighbours and direction instead of one per pair in the window)."""

    def __init__(self, inputs: np.ndarray, preset: str):
        self.gray = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in inputs]
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self.flows: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, i: int, j: int) -> np.ndarray:
        if (i, j) not in self.flows:
            if abs(j - i) == 1:
                self.flows[(i, j)] = self.dis.calc(self.gray[i], self.gray[j], None)
            else:
                step = i + (1 if j > i else -1)
                first = self(i, step)
                self.flows[(i, j)] = first + warp(self(step, j), first)
        return self.flows[(i, j)]

    def forget_before(self, row: int) -> None:
        self.flows = {k: v for k, v in self.flows.items() if min(k) >= row}


def _squared_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared difference of float32 RGB images, mean over channels (cv2.transform: numpy's mean
    over a last axis of 3 is many times slower on small images)."""
    difference = a - b
    return cv2.transform(difference * difference, _CHANNEL_MEAN)


def _near_change(squared: np.ndarray) -> np.ndarray:
    """The largest 3x3 mean of `squared` within SPREAD px: a change anywhere near a pixel (a lip edge
    that moved) counts at the pixel, so motion edges keep their own frame."""
    return cv2.dilate(cv2.blur(squared, (3, 3), borderType=cv2.BORDER_REFLECT), np.ones((SPREAD, SPREAD), np.uint8))


def excess_change(own_out: np.ndarray, own_in: np.ndarray, warped_out: np.ndarray, warped_in: np.ndarray,
                  still: float) -> float | None:
    """How much more the output changed than its input between a frame and a neighbour warped onto it:
    the median squared change (8-bit levels, mean over channels) of the output less the input's, over
    the pixels where the input changed by less than `still`; None where there are none."""
    input_change = _squared_change(warped_in, own_in)
    where = _near_change(input_change) < still ** 2
    if not where.any():
        return None
    return float(np.median(_squared_change(warped_out, own_out)[where]) - np.median(input_change[where]))


def shot_flicker(outputs: np.ndarray, inputs: np.ndarray, rows: range, flow: FlowCache, still: float) -> float:
    """The translator's flicker beyond its input's over one segment `rows` (8-bit levels): the root of
    the median over its consecutive pairs of `excess_change`, 0 when that is not positive."""
    excess = []
    for t in rows[:-1]:
        both = warp(np.concatenate([inputs[t + 1], outputs[t + 1]], axis=-1).astype(np.float32), flow(t, t + 1))
        flow.forget_before(t + 1)  # a long shot's flows are not kept; the average computes its own
        pair = excess_change(outputs[t].astype(np.float32), inputs[t].astype(np.float32), both[..., 3:],
                             both[..., :3], still)
        if pair is not None:
            excess.append(pair)
    return float(np.sqrt(max(np.median(excess), 0.0))) if excess else 0.0


def stabilise_frame(t: int, rows: range, outputs: np.ndarray, inputs: np.ndarray, flow: FlowCache,
                    tolerance: float, tau: float) -> np.ndarray:
    """Frame t of `outputs` [N, H, W, 3] as the weighted mean of its neighbours `rows` warped onto it."""
    own_in = inputs[t].astype(np.float32)
    total, weight = outputs[t].astype(np.float32), np.ones(own_in.shape[:2], np.float32)
    for k in rows:
        if k == t:
            continue
        both = warp(np.concatenate([inputs[k], outputs[k]], axis=-1).astype(np.float32), flow(t, k))
        difference = _near_change(_squared_change(both[..., :3], own_in))
        w = np.exp(-difference / (2 * tolerance ** 2) - (k - t) ** 2 / (2 * tau ** 2)).astype(np.float32)
        total = total + w[..., None] * both[..., 3:]
        weight += w
    return np.clip(np.rint(total / weight[..., None]), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Stabiliser:
    """The `infer.temporal: flow` settings: `window` frames on each side, input change `still` (8-bit
    levels) below which a pixel measures flicker, tolerance `strength` times the flicker, fall-off
    `tau` (frames), DIS `preset`."""

    window: int
    still: float
    strength: float
    tau: float
    preset: str = "medium"

    @classmethod
    def from_params(cls, params: "InferParams") -> Stabiliser:
        """The stabiliser of the `infer` group's temporal_* settings."""
        return cls(params.temporal_window, params.temporal_still, params.temporal_strength, params.temporal_tau,
                   params.temporal_flow)

    def settings(self) -> dict:
        return {"temporal": "flow", "window": self.window, "still": self.still, "strength": self.strength,
                "tau": self.tau, "flow": f"DIS {self.preset}"}

    def __call__(self, outputs: np.ndarray, inputs: np.ndarray, frame: np.ndarray, shot: np.ndarray
                 ) -> Iterator[np.ndarray]:
        """Yield the stabilised frames of `outputs` [N, C, C, 3] uint8, translated from `inputs` (the
        crops as the model was given them, [N, C, C, 3] uint8), in order; `frame`, `shot`: each
        row's frame number and shot, which set the segments."""
        flow = FlowCache(inputs, self.preset)
        for start, stop in segments(frame, shot):
            tolerance = self.strength * shot_flicker(outputs, inputs, range(start, stop), flow, self.still)
            for t in range(start, stop):
                if tolerance == 0:  # the translator changes no more than its input on this shot
                    yield outputs[t]
                    continue
                first = max(start, t - self.window)
                flow.forget_before(first)
                yield stabilise_frame(t, range(first, min(stop, t + self.window + 1)), outputs, inputs, flow,
                                      tolerance, self.tau)
