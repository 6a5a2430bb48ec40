"""Train/test split: whole clips when given, else one contiguous seeded test segment per video."""
import numpy as np
import pytest
from helpers.repo import shipped_params

from pipeline.data.split import frame_splits, held_out_segment

TEST_SHARE = shipped_params("data").test_share


@pytest.mark.parametrize("split", ["train", "test"])
def test_given_split_takes_the_whole_clip(split):
    assert list(frame_splits("bbaf2n", 75, split, TEST_SHARE, 0)) == [split] * 75


@pytest.mark.parametrize("n_frames", [1, 2, 75, 1499, 22388])
def test_one_contiguous_test_segment_of_the_test_share(n_frames):
    labels = frame_splits("talk", n_frames, None, TEST_SHARE, 0)
    test = np.flatnonzero(labels == "test")
    assert len(test) == round(n_frames * TEST_SHARE)
    assert set(labels) <= {"train", "test"}
    if len(test):
        assert np.all(np.diff(test) == 1)  # one block, never scattered frames


def test_segment_is_seeded_and_depends_only_on_seed_and_name():
    again = [held_out_segment("man", 1499, 0.2637, seed) for seed in range(20)]
    assert again == [held_out_segment("man", 1499, 0.2637, seed) for seed in range(20)]
    assert len(set(again)) > 10  # the seed moves the segment
    assert len({held_out_segment(name, 1499, 0.2637, 0) for name in ("man", "woman", "child", "dog")}) > 1
    start, stop = again[0]
    assert 0 <= start < stop <= 1499 and stop - start == round(1499 * 0.2637)
