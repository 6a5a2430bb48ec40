"""Averaging masks along a face track (pipeline.face.mask.along_track): within runs of consecutive
frames of one shot only, with Gaussian weights, streaming."""
import numpy as np
import pytest

from pipeline.face.mask import along_track


def values(outputs):
    return [None if m is None else float(m[0, 0]) for m in outputs]


def test_a_steady_mask_stays_as_it_is():
    mask = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    out = list(along_track([mask] * 6, range(6), [0] * 6, 1.5))
    assert len(out) == 6
    for m in out:
        np.testing.assert_allclose(m, mask, rtol=1e-6)


def test_neighbours_weigh_as_a_gaussian_of_their_distance():
    masks = [np.full((2, 2), float(i == 5), np.float32) for i in range(11)]  # one bright frame in the middle
    out = values(along_track(masks, range(11), [0] * 11, 1.0))
    weights = np.exp(-0.5 * np.arange(-2, 3) ** 2)
    assert out[5] == pytest.approx(1 / weights.sum())
    assert out[4] == pytest.approx(weights[1] / weights.sum()) and out[3] == pytest.approx(weights[0] / weights.sum())
    assert out[2] == 0 and out[8] == 0  # beyond 2 sigma


@pytest.mark.parametrize("frames, shots, masks", [
    (range(8), [0] * 4 + [1] * 4, [0, 0, 0, 0, 1, 1, 1, 1]),        # a cut
    ([0, 1, 2, 3, 7, 8, 9, 10], [0] * 8, [0, 0, 0, 0, 1, 1, 1, 1]),  # frames missing between
    (range(9), [0] * 9, [0, 0, 0, 0, None, 1, 1, 1, 1]),            # a frame without a mask
], ids=["cut", "gap", "no mask"])
def test_runs_never_mix(frames, shots, masks):
    arrays = [None if v is None else np.full((2, 2), float(v), np.float32) for v in masks]
    assert values(along_track(arrays, frames, shots, 2.0)) == masks


def test_it_reads_only_as_far_ahead_as_its_window():
    pulled = []

    def masks():
        for i in range(100):
            pulled.append(i)
            yield np.zeros((2, 2), np.float32)

    out = along_track(masks(), range(100), [0] * 100, 1.5)  # radius 3
    next(out)
    assert len(pulled) == 4
    assert len(list(out)) == 99
