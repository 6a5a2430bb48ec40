"""Motion fidelity (pipeline.evaluate.motion_fidelity) on a real talking clip: the man of sbat6n says a GRID
sentence, so his mouth opens and closes many times in 3 s."""
import cv2
import numpy as np
import pytest
from helpers.translation_layout import MARGIN, grid_crops

from pipeline.evaluate.motion_fidelity import FaceMotion, correlation, motion_fidelity, openings
from pipeline.face.dlib_models import landmark_model
from pipeline.face.identity import FaceDescriber
from pipeline.models.size import at_model_size

DELAY = 5


@pytest.fixture(scope="module")
def measure():
    return FaceMotion(216, FaceDescriber("crop", 216, MARGIN).centre)


@pytest.fixture(scope="module")
def clip(samples):
    """All 75 frames of the test clip, as a 64 px model is given them."""
    return at_model_size(grid_crops(samples / "A" / "sbat6n.mpg", 75), 64)


@pytest.fixture(scope="module")
def source(clip, measure):
    return measure(clip)


def one_shot(clip):
    return np.zeros(len(clip), np.int64)


def test_the_talking_input_scored_against_itself_gives_one(clip, source):
    mouth = source[:, 0]
    assert mouth.max() - mouth.min() > 0.1  # he talks: the inner-lip gap varies by >10% of the eye distance
    np.testing.assert_allclose(motion_fidelity(source, source, one_shot(clip)), [1, 1])


def test_a_frozen_face_scores_about_zero(clip, source, measure):
    frozen = measure(np.repeat(clip[:1], len(clip), axis=0))
    assert motion_fidelity(frozen, source, one_shot(clip))[0] <= 0.1


def test_a_mouth_five_frames_late_scores_less(clip, source, measure):
    delayed = measure(np.concatenate([np.repeat(clip[:1], DELAY, axis=0), clip[:-DELAY]]))
    late, = motion_fidelity(delayed, source, one_shot(clip))[:1]
    assert late < 0.7  # measured 0.58
    assert late < motion_fidelity(measure(clip), source, one_shot(clip))[0]


def test_the_mean_of_ten_fits_halves_the_jitter_of_one(clip, source, measure):
    """The clip moved by one pixel right and down: its mouth does not open, yet one landmark fit in a
    fixed rectangle measures it open by a different amount; the mean of the ten fits moves less."""
    moved = np.stack([cv2.warpAffine(crop, np.float32([[1, 0, 1], [0, 1, 1]]), crop.shape[1::-1],
                                     borderMode=cv2.BORDER_REPLICATE) for crop in clip])

    def one_fit(crops):
        sized = [cv2.resize(crop, (216, 216), interpolation=cv2.INTER_CUBIC) for crop in crops]
        return np.array([openings(np.array([(p.x, p.y) for p in landmark_model()(image, measure.rects[0]).parts()],
                                           np.float64))[0] for image in sized])

    one = np.abs(one_fit(moved) - one_fit(clip)).mean()
    ten = np.abs(measure(moved)[:, 0] - source[:, 0]).mean()
    assert ten < 0.6 * one  # measured 0.0037 against 0.0081 (AVX-512)


def test_the_worker_processes_give_the_figures_of_this_process(clip, source, measure):
    """The series come from one worker process per core (dlib's shape predictor holds the GIL), in
    chunks: each crop's figures are the ones this process computes for it, in the crops' order."""
    import os

    from pipeline.evaluate import motion_fidelity

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the series are computed in this process")
    assert motion_fidelity._workers() is not None
    np.testing.assert_array_equal(source, measure.series(clip))
    reversed_clip = clip[::-1]
    np.testing.assert_array_equal(measure(reversed_clip), source[::-1])


def test_shots_are_scored_apart_and_short_ones_left_out():
    rising = np.c_[np.arange(30.0), np.arange(30.0)]
    falling = rising[::-1].copy()
    shot = np.repeat([0, 1, 2], [10, 15, 5])
    both = np.r_[rising[:10], falling[:15], rising[:5]]  # shot 1 moves against the source, shot 2 is too short
    score = motion_fidelity(both, np.r_[rising[:10], rising[:15], falling[:5]], shot)
    np.testing.assert_allclose(score, (10 * 1 - 15 * 1) / 25)
    assert correlation(np.ones(5), np.arange(5.0)) == 0.0
