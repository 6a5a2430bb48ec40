"""The temporal stabiliser (infer.temporal: flow) on real clips: it never invents motion, it removes
per-frame noise, and it restarts at scene cuts and track gaps."""
import cv2
import numpy as np
import pytest

from decoders import decode
from pipeline.faces import scene_cuts, shot_ids
from conftest import REPO
from pipeline.params import load_group
from pipeline.reconstruction import psnr
from pipeline.model_size import at_model_size
from pipeline.stabilise import Stabiliser, segments
from pipeline.temporal import consecutive_pairs, input_motion, warping_error
from translation_layout import grid_crops

STABILISER = Stabiliser.from_params(load_group("infer", REPO / "params.yaml"))  # what the shipped params run
FIXED = Stabiliser(STABILISER.window, STABILISER.sigma, adapt=0.0, tau=STABILISER.tau, preset=STABILISER.preset)


@pytest.fixture(scope="module")
def clip(samples):
    """40 frames of the man talking, as a 64 px model is given them."""
    return at_model_size(grid_crops(samples / "A" / "sbat6n.mpg", 40), 64)


def one_shot(count):
    return np.arange(count), np.zeros(count, np.int64)


def stabilised(outputs, inputs, frame, shot, stabiliser=STABILISER):
    return np.stack(list(stabiliser(outputs, inputs, frame, shot)))


def noisy(clip, std):
    """A translator that adds independent noise of `std` levels to every frame of `clip`."""
    return (clip + np.random.default_rng(0).normal(0, std, clip.shape)).clip(0, 255).round().astype(np.uint8)


def test_segments_break_at_cuts_and_gaps():
    assert list(segments([0, 1, 2, 4, 5, 6, 7], [0, 0, 0, 0, 0, 1, 1])) == [(0, 3), (3, 5), (5, 7)]


def test_a_translator_that_returns_its_input_comes_out_unchanged(clip):
    """The option never invents motion: the input itself (a translator that changes nothing) stays
    within 40 dB of itself."""
    assert psnr(clip, stabilised(clip, clip, *one_shot(len(clip)))) >= 40  # measured 47.1 dB


def test_independent_noise_per_frame_loses_at_least_half_its_warping_error(clip):
    """A translator that adds its own noise to every frame flickers; stabilised, its warping error
    (judged with the metric's Farneback flow, not the stabiliser's DIS) is at least halved."""
    frame, shot = one_shot(len(clip))
    flickering = noisy(clip, 6)
    motion = input_motion(clip, consecutive_pairs(frame, shot))
    before = warping_error(flickering, motion)
    after = warping_error(stabilised(flickering, clip, frame, shot), motion)
    assert after <= before / 2  # measured 0.02x
    assert psnr(clip, stabilised(flickering, clip, frame, shot)) > psnr(clip, flickering)  # the noise went, not the face


def test_a_steady_translator_keeps_the_fixed_tolerance(clip):
    """A translator whose frames change no more than its input (here: colours inverted) never flickers
    past sigma / adapt, so the adaptive tolerance leaves its stabilised frames exactly as a fixed one."""
    inverted = (255 - clip).astype(np.uint8)
    frame, shot = one_shot(len(clip))
    np.testing.assert_array_equal(stabilised(inverted, clip, frame, shot), stabilised(inverted, clip, frame, shot, FIXED))


def test_a_translator_flickering_past_sigma_on_a_moving_shot_is_averaged_harder(robustness):
    """The first shot of Megamind.avi (the camera and the figure move) at 64 px, with noise of 20
    levels a frame: where the input changes a little, a fixed sigma cannot tell that change from the
    flicker and keeps each frame's own noise; the tolerance raised to the measured flicker averages
    it, ending nearer the clean clip."""
    frames = decode(robustness / "Megamind.avi", 98)[1:]
    clip = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    frame, shot = one_shot(len(clip))
    flickering = noisy(clip, 20)
    motion = input_motion(clip, consecutive_pairs(frame, shot))
    fixed, adaptive = (stabilised(flickering, clip, frame, shot, s) for s in (FIXED, STABILISER))
    assert warping_error(adaptive, motion) <= warping_error(fixed, motion) / 2  # measured 0.22x
    assert psnr(clip, adaptive) > psnr(clip, fixed)  # measured 30.2 against 29.5 dB


def test_restarts_at_each_cut_of_megamind(robustness):
    """Frames 1-219 of Megamind.avi at 64 px, shots from crop_faces' cut detector: whatever a shot's
    translation was, the next shot's stabilised frames are the same, and they differ from a run
    that is not told about the cuts (the window would reach across)."""
    frames = decode(robustness / "Megamind.avi", 220)[1:]
    shot = shot_ids(frames)
    assert [c + 1 for c in scene_cuts(shot)] == [98, 154, 200]
    inputs = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    outputs = (255 - inputs).astype(np.uint8)  # a translator that inverts colours: one that moves with its input
    frame = np.arange(len(frames))
    first = stabilised(outputs, inputs, frame, shot)
    for cut in scene_cuts(shot):
        changed = outputs.copy()
        changed[:cut] = np.random.default_rng(cut).integers(0, 256, changed[:cut].shape, dtype=np.uint8)
        np.testing.assert_array_equal(stabilised(changed, inputs, frame, shot)[cut:], first[cut:])
        blind = stabilised(changed, inputs, frame, np.zeros_like(shot))
        assert np.abs(blind[cut].astype(int) - first[cut]).max() > 0


def test_a_gap_in_the_face_track_restarts_it(clip):
    frame = np.r_[np.arange(20), np.arange(25, 45)]
    shot = np.zeros(40, np.int64)
    noise = np.random.default_rng(1).normal(0, 6, clip.shape)
    outputs = (clip + noise).clip(0, 255).round().astype(np.uint8)
    changed = outputs.copy()
    changed[:20] = 0
    np.testing.assert_array_equal(stabilised(changed, clip, frame, shot)[20:], stabilised(outputs, clip, frame, shot)[20:])


def test_tau_limits_how_far_the_average_reaches(clip):
    """With tau 0.5 frames a neighbour 2 frames away weighs exp(-8) at most: a window of 4 gives
    what a window of 1 gives (within rounding), a window of 1 with a wide tau does not."""
    frame, shot = one_shot(len(clip))
    flickering = noisy(clip, 6)
    near = Stabiliser(1, STABILISER.sigma, adapt=0.0, tau=0.5, preset=STABILISER.preset)
    wide = Stabiliser(4, STABILISER.sigma, adapt=0.0, tau=0.5, preset=STABILISER.preset)
    reaching = Stabiliser(4, STABILISER.sigma, adapt=0.0, tau=100.0, preset=STABILISER.preset)
    short = stabilised(flickering, clip, frame, shot, near).astype(int)
    assert np.abs(stabilised(flickering, clip, frame, shot, wide) - short).max() <= 1
    assert np.abs(stabilised(flickering, clip, frame, shot, reaching) - short).max() > 10
