"""Warping error and tOF on real GRID face crops: static, flickering, noisy, panned and cut clips."""
import numpy as np
import pytest
from helpers.decoders import decode
from helpers.translation_layout import grid_crops

from pipeline.common.runs import consecutive_pairs
from pipeline.translate.temporal import input_motion, optical_flow, tof, valid_mask, warping_error


@pytest.fixture(scope="module")
def clip(samples):
    """30 real frames of a test clip of the man, cropped to 72 px (he talks, blinks, nods slightly)."""
    return grid_crops(samples / "A" / "sbat6n.mpg", 30)


def motion(frames, shots=None):
    shots = np.zeros(len(frames)) if shots is None else shots
    return input_motion(frames, consecutive_pairs(np.arange(len(frames)), shots))


def test_pairs_skip_missing_frames_and_cuts():
    assert consecutive_pairs([0, 1, 2, 4, 5, 6], [0, 0, 0, 0, 1, 1]).tolist() == [0, 1, 4]


def test_static_clip_has_no_warping_error(clip):
    static = np.repeat(clip[:1], 8, axis=0)
    still = motion(static)
    assert warping_error(static, still) < 1e-6
    assert tof(static, still) == 0.0


def test_flicker_and_noise_cost_far_more_than_real_motion(clip):
    real = motion(clip)
    own = warping_error(clip, real)
    flicker = (clip * np.where(np.arange(len(clip)) % 2, 1.0, 0.8)[:, None, None, None]).round().astype(np.uint8)
    noise = np.random.default_rng(0).normal(0, 8, clip.shape)
    noisy = (clip + noise).clip(0, 255).round().astype(np.uint8)
    assert 0 < own < 2e-4  # measured 3.8e-5 on sbat6n
    assert warping_error(flicker, real) > 50 * own  # measured ~300x
    assert warping_error(noisy, real) > 10 * own  # measured ~50x
    assert tof(clip, real) == 0.0
    assert tof(flicker, real) > 0.05 and tof(noisy, real) > 0.05


def test_consistent_recolouring_is_not_penalised(clip):
    """A translation that looks nothing like the input but moves with it scores like the input."""
    real = motion(clip)
    inverted = 255 - clip
    assert warping_error(inverted, real) == pytest.approx(warping_error(clip, real), rel=1e-3)
    assert tof(inverted, real) < 0.02


def test_pan_is_followed_and_pixels_leaving_the_frame_are_masked(samples):
    """Two crops of one real frame 4 px apart: the flow finds the pan, warping undoes it, and the
    columns whose content is not in the next crop are excluded."""
    frame = decode(samples / "A" / "sbat6n.mpg", 1)[0]
    pair = np.stack([frame[60:132, 140:212], frame[60:132, 144:216]])
    forward, backward = optical_flow(pair[0], pair[1]), optical_flow(pair[1], pair[0])
    assert np.median(forward[..., 0]) == pytest.approx(-4, abs=0.2)
    valid = valid_mask(forward, backward)
    assert not valid[:, :3].any()
    assert valid[:, 10:-10].mean() > 0.95
    unwarped = np.mean((pair[0] / 255 - pair[1] / 255) ** 2)
    assert warping_error(pair, motion(pair)) < unwarped / 100  # measured 1.4e-5 vs 8.9e-3


def test_pairs_across_a_cut_are_not_scored(samples):
    """The man then a woman: with the cut marked, the jump between them is not a motion error."""
    cut = np.concatenate([grid_crops(samples / "A" / "sbat6n.mpg", 10), grid_crops(samples / "B" / "lrwp9a.mpg", 10)])
    shots = np.repeat([0, 1], 10)
    marked, unmarked = motion(cut, shots), motion(cut)
    assert 9 not in marked.pairs and len(marked.pairs) == 18
    assert warping_error(cut, marked) < warping_error(cut, unmarked) / 10  # measured 6.7e-5 vs 3.8e-3
