"""One person per video: across a video's shots only the main person's face is kept (stage
crop_faces "keep one identity"), told apart by dlib's face descriptors. Megamind.avi cuts between
two characters: a woman (shots 1 and 3, 143 frames) and a man with glasses (shots 2 and 4, 126)."""
import functools

import numpy as np
import pytest
from helpers.decoders import decode

from pipeline.face.identity import SAME_PERSON_ACROSS_SHOTS, FaceDescriber, main_person_shots
from pipeline.face.tracking import FaceDetector, main_track, track_faces

MEGAMIND_FPS = 23.976
SHOTS = [(1, 98), (98, 154), (154, 200), (200, 270)]  # after the black frame 0: woman, man, woman, man


@pytest.fixture(scope="module")
def megamind(robustness):
    return decode(robustness / "Megamind.avi")


@pytest.fixture(scope="module")
def describe():
    return FaceDescriber()


def test_the_main_persons_shots_stay_and_the_other_persons_go(megamind, describe):
    kept = track_faces(megamind, MEGAMIND_FPS, 5, keep_shots=functools.partial(main_person_shots, describe=describe))
    table = kept.table
    for (start, stop), woman in zip(SHOTS, [True, False, True, False]):
        assert table["face"][start:stop].all() if woman else not table["face"][start:stop].any(), (start, stop)
    assert kept.dropped_shots == 2
    everyone = track_faces(megamind, MEGAMIND_FPS, 5)  # without the filter every shot keeps its face
    assert everyone.dropped_shots == 0 and everyone.table["face"][1:].all()


def test_shots_of_one_person_are_closer_than_the_threshold_and_two_people_farther(megamind, describe):
    """The margin the threshold rests on, on these faces: one character's two shots vs the other's."""
    detect = FaceDetector()
    means = []
    for start, stop in SHOTS:
        track = main_track(megamind, start, stop, detect, 5)
        keys = sorted(track)[::10]
        means.append(describe.at_boxes([megamind[k] for k in keys], [track[k] for k in keys]).mean(axis=0))
    distance = lambda i, j: np.linalg.norm(means[i] - means[j])  # noqa: E731
    assert max(distance(0, 2), distance(1, 3)) < SAME_PERSON_ACROSS_SHOTS
    assert min(distance(0, 1), distance(0, 3), distance(2, 1), distance(2, 3)) > SAME_PERSON_ACROSS_SHOTS


def test_a_video_of_one_shot_is_never_described(megamind):
    """Nothing to tell apart: the filter answers without running the face recogniser (None would fail)."""
    track = main_track(megamind, 1, 98, FaceDetector(), 5)
    assert main_person_shots(megamind, [{}, track], describe=None) == [True, True]
