"""The temporal stabiliser (infer.temporal: flow) on real clips: it never invents motion, it removes
per-frame noise, and it restarts at scene cuts and track gaps."""
import cv2
import numpy as np
import pytest
from helpers.decoders import decode
from helpers.repo import REPO
from helpers.translation_layout import grid_crops

from pipeline.common.params import load_group
from pipeline.common.runs import consecutive_pairs, segments
from pipeline.evaluate.reconstruction import psnr
from pipeline.face.tracking import scene_cuts, shot_ids
from pipeline.models.size import at_model_size
from pipeline.translate.stabilise import Stabiliser
from pipeline.translate.temporal import input_motion, warping_error

STABILISER = Stabiliser.from_params(load_group("infer", REPO / "params.yaml"))  # what the shipped params run


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
    """The option never invents motion: the input itself (a translator that changes nothing) has no
    flicker beyond its input's, so it comes out as it went in."""
    np.testing.assert_array_equal(stabilised(clip, clip, *one_shot(len(clip))), clip)


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


def test_a_translator_changing_only_as_its_input_does_is_left_as_it_is(clip):
    """A translator whose frames change exactly as its input's (here: colours inverted) flickers no
    more than its input, so no frame of it is averaged (averaging would only blur it)."""
    inverted = (255 - clip).astype(np.uint8)
    np.testing.assert_array_equal(stabilised(inverted, clip, *one_shot(len(clip))), inverted)


def test_a_translator_flickering_hard_on_a_moving_shot_is_averaged(robustness):
    """The first shot of Megamind.avi (the camera and the figure move) at 64 px, with noise of 20
    levels a frame: the tolerance follows the measured flicker, so the input's own small changes
    do not stop the average, and the noise goes without smearing the moving picture."""
    frames = decode(robustness / "Megamind.avi", 98)[1:]
    clip = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    frame, shot = one_shot(len(clip))
    flickering = noisy(clip, 20)
    motion = input_motion(clip, consecutive_pairs(frame, shot))
    steadier = stabilised(flickering, clip, frame, shot)
    assert warping_error(steadier, motion) <= warping_error(flickering, motion) / 4  # measured 0.02x
    assert psnr(clip, steadier) > psnr(clip, flickering) + 3  # measured 30.1 against 23.5 dB


def test_restarts_at_each_cut_of_megamind(robustness):
    """Frames 1-219 of Megamind.avi at 64 px, shots from crop_faces' cut detector: whatever a shot's
    translation was, the next shot's stabilised frames are the same, and they differ from a run
    that is not told about the cuts (the window would reach across)."""
    frames = decode(robustness / "Megamind.avi", 220)[1:]
    shot = shot_ids(frames)
    assert [c + 1 for c in scene_cuts(shot)] == [98, 154, 200]
    inputs = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    outputs = noisy(255 - inputs, 6)  # a translator that inverts colours and flickers, so it is averaged
    frame = np.arange(len(frames))
    first = stabilised(outputs, inputs, frame, shot)
    for cut in scene_cuts(shot):
        changed = outputs.copy()
        changed[:cut] = np.random.default_rng(cut).integers(0, 256, changed[:cut].shape, dtype=np.uint8)
        np.testing.assert_array_equal(stabilised(changed, inputs, frame, shot)[cut:], first[cut:])
        blind = stabilised(changed, inputs, frame, np.zeros_like(shot))
        assert np.abs(blind[cut].astype(int) - first[cut]).mean() > 5  # measured 24-41 levels


def test_each_shot_is_averaged_as_hard_as_its_own_flicker(robustness):
    """Frames 1-153 of Megamind.avi (two shots), a translator that inverts colours and adds noise in
    the second shot only: the first shot flickers no more than its input and comes out exactly as
    translated, the second is averaged."""
    frames = decode(robustness / "Megamind.avi", 154)[1:]
    shot = shot_ids(frames)
    assert scene_cuts(shot) == [97]
    inputs = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    outputs = (255 - inputs).astype(np.uint8)
    outputs[97:] = noisy(outputs[97:], 6)
    frame = np.arange(len(frames))
    steadier = stabilised(outputs, inputs, frame, shot)
    np.testing.assert_array_equal(steadier[:97], outputs[:97])
    second = np.arange(97, len(frames))
    motion = input_motion(inputs[97:], consecutive_pairs(frame[second], shot[second]))
    assert warping_error(steadier[97:], motion) <= warping_error(outputs[97:], motion) / 2  # measured 0.07x


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
    near, wide, reaching = (Stabiliser(window, STABILISER.still, STABILISER.strength, tau, STABILISER.preset)
                            for window, tau in ((1, 0.5), (4, 0.5), (4, 100.0)))
    short = stabilised(flickering, clip, frame, shot, near).astype(int)
    assert np.abs(stabilised(flickering, clip, frame, shot, wide) - short).max() <= 1
    assert np.abs(stabilised(flickering, clip, frame, shot, reaching) - short).max() > 10
