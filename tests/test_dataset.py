"""Sampling real GRID face crops: unpaired order, crops and flips, same-shot triplets, RNG state."""
import numpy as np
import pandas as pd
import pytest
import torch
from helpers.real_crops import write_faces

from pipeline.common.errors import FacecycleError
from pipeline.store.faces import load_crops
from pipeline.train.dataset import Domain, UnpairedBatches, center_crops, crop_flip, triplet_starts

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def faces(tmp_path_factory, samples):
    """A: two clips of 12 frames, a cut at frame 5 of the first, no face in frame 7 of the second.
    B: one clip of 12 frames. 40 px crops."""
    clips = {"A": [samples / "A/bbaf2n.mpg", samples / "A/bbiz1s.mpg"], "B": [samples / "B/brbk7n.mpg"]}
    return write_faces(tmp_path_factory.mktemp("faces"), clips, size=40, frames=12,
                       cuts={"bbaf2n": [5]}, misses={"bbiz1s": [7]})


def test_triplets_never_cross_a_cut_a_missing_face_or_a_clip(faces):
    starts = triplet_starts(faces, "A", n_crops=23)
    # rows 0-4: bbaf2n shot 0 (frames 0-4); 5-11: shot 1 (frames 5-11);
    # rows 12-18: bbiz1s frames 0-6; rows 19-22: frames 8-11 (frame 7 has no face)
    assert starts.tolist() == [0, 1, 2, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 19, 20]


def test_triplet_rows_must_match_the_crop_array(faces, tmp_path):
    with pytest.raises(FacecycleError, match="train_crops.csv: lists 23 crops for A_train but the array holds 30"):
        triplet_starts(faces, "A", n_crops=30)
    pd.read_csv(faces / "train_crops.csv").drop(columns="shot").to_csv(tmp_path / "train_crops.csv", index=False)
    with pytest.raises(FacecycleError, match=r"train_crops.csv: missing column\(s\) \['shot'\]"):
        triplet_starts(tmp_path, "A", n_crops=23)


def test_bad_crop_files_are_named(tmp_path):
    with pytest.raises(FacecycleError, match="A_train.npy: not found"):
        load_crops(tmp_path, "A", "train")
    np.save(tmp_path / "A_train.npy", np.zeros((4, 40, 40, 3), np.float32))
    with pytest.raises(FacecycleError, match=r"A_train.npy: expected uint8 \[N, S, S, 3\] face crops, got float32"):
        load_crops(tmp_path, "A", "train")


def test_crop_flip_cuts_the_window_mirrors_it_and_scales_to_minus_one_one(faces):
    crops = np.load(faces / "A_train.npy")
    images = torch.from_numpy(crops)
    rows = torch.tensor([[3, 4, 5], [10, 11, 12]])
    out = crop_flip(images, rows, torch.tensor([2, 8]), torch.tensor([5, 0]), torch.tensor([False, True]), 32)
    assert out.shape == (2, 3, 3, 32, 32) and out.dtype == torch.float32
    first = crops[3:6, 2:34, 5:37].transpose(0, 3, 1, 2) / 127.5 - 1
    second = crops[10:13, 8:40, 0:32][:, :, ::-1].transpose(0, 3, 1, 2) / 127.5 - 1
    assert np.allclose(out[0].numpy(), first, atol=1e-6) and np.allclose(out[1].numpy(), second, atol=1e-6)


def test_a_goes_through_every_sample_once_per_epoch_and_b_at_random(faces):
    a, b = Domain.load(faces, "A", 1, CPU), Domain.load(faces, "B", 1, CPU)
    batches = UnpairedBatches(a, b, crop_size=32, batch_size=1, seed=0)
    assert batches.epoch_size == 23  # max(|A|, |B|)
    plans = [batches.draw() for _ in range(46)]
    a_rows = [p["A"]["rows"].item() for p in plans]
    assert sorted(a_rows[:23]) == list(range(23)) and sorted(a_rows[23:]) == list(range(23))
    assert a_rows[:23] != a_rows[23:]  # a new order each epoch
    b_rows = [p["B"]["rows"].item() for p in plans]
    assert set(b_rows) <= set(range(12)) and len(set(b_rows)) > 5
    tops = [p[d]["top"].item() for p in plans for d in "AB"]
    assert min(tops) == 0 and max(tops) == 8  # crops anywhere in the 40 - 32 + 1 positions
    flips = [p["A"]["flip"].item() for p in plans]
    assert 0 < sum(flips) < len(flips)


def test_triplet_batches_share_one_crop_and_flip_across_their_frames(faces):
    a, b = Domain.load(faces, "A", 3, CPU), Domain.load(faces, "B", 3, CPU)
    batches = UnpairedBatches(a, b, crop_size=32, batch_size=4, seed=3)
    state = batches.state_dict()
    plan = batches.draw()
    for choice, domain in ((plan["A"], a), (plan["B"], b)):
        assert choice["rows"].shape == (4, 3) and choice["top"].shape == (4,)  # one window per sample
        assert set(choice["rows"][:, 0].tolist()) <= set(domain.starts.tolist())
        assert (choice["rows"].diff(dim=1) == 1).all()
    batches.load_state_dict(state)
    batch = next(batches)
    assert batch["A"].shape == (4, 3, 3, 32, 32) and batch["B"].shape == (4, 3, 3, 32, 32)
    crops = np.load(faces / "A_train.npy")
    row, top, left, flip = (plan["A"][k][0] for k in ("rows", "top", "left", "flip"))
    window = crops[row[0]:row[0] + 3, top:top + 32, left:left + 32]
    window = window[:, :, ::-1] if flip else window
    assert np.allclose(batch["A"][0].numpy(), window.transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)


def test_without_flip_every_sample_is_its_unmirrored_window(faces):
    """Recycle-GAN's setting (the authors' triplet loader crops but never flips): over 40 samples,
    each equals its plain window, where the flipping sampler mirrors about half."""
    a, b = Domain.load(faces, "A", 3, CPU), Domain.load(faces, "B", 3, CPU)
    crops = np.load(faces / "A_train.npy")
    mirrored = {}
    for flip in (False, True):
        batches = UnpairedBatches(a, b, crop_size=32, batch_size=4, seed=5, flip=flip)
        mirrored[flip] = 0
        for _ in range(10):
            state = batches.state_dict()
            plan = batches.draw()
            batches.load_state_dict(state)
            batch = next(batches)["A"].numpy()
            for sample, (row, top, left) in enumerate(zip(*(plan["A"][k] for k in ("rows", "top", "left")))):
                window = crops[row[0]:row[0] + 3, top:top + 32, left:left + 32].transpose(0, 3, 1, 2) / 127.5 - 1
                mirrored[flip] += not np.allclose(batch[sample], window, atol=1e-6)
    assert mirrored[False] == 0 and 10 < mirrored[True] < 30


def test_sampler_state_round_trip_continues_identically(faces):
    a, b = Domain.load(faces, "A", 1, CPU), Domain.load(faces, "B", 1, CPU)
    batches = UnpairedBatches(a, b, crop_size=32, batch_size=3, seed=7)
    for _ in range(5):
        next(batches)
    copy = UnpairedBatches(a, b, crop_size=32, batch_size=3, seed=123)
    copy.load_state_dict(batches.state_dict())
    for _ in range(12):  # past an epoch boundary
        x, y = next(batches), next(copy)
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])


def test_no_triplet_is_a_clear_error(tmp_path, samples):
    faces = write_faces(tmp_path, {"A": [samples / "A/bbaf2n.mpg"]}, size=40, frames=4, misses={"bbaf2n": [1, 2]})
    with pytest.raises(FacecycleError, match="A_train.npy: no 3 consecutive frames of one shot"):
        Domain.load(faces, "A", 3, CPU)


@pytest.mark.parametrize("frames", [1, 3])
def test_center_crops_are_the_centred_first_frames_of_evenly_spaced_samples(faces, frames):
    """The sample grid's fixed images: the samples 0, 1/3, 2/3 and all the way through the domain's
    samples (every crop for CycleGAN, every triplet start for Recycle-GAN), the 32 px centre of 40 px crops."""
    domain = Domain.load(faces, "A", frames, CPU)
    fixed = center_crops(domain, 4, 32)
    starts = domain.starts.numpy()
    rows = starts[np.linspace(0, len(starts) - 1, 4).round().astype(int)]
    crops = np.load(faces / "A_train.npy")
    assert fixed.shape == (4, 3, 32, 32)
    np.testing.assert_allclose(fixed.numpy(), crops[rows, 4:36, 4:36].transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)
