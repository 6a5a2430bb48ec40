"""dlib face descriptors on real GRID crops: the man and the women are told apart, Frechet distance."""
import dlib
import numpy as np
import pytest
import torch
from helpers.decoders import decode
from helpers.translation_layout import grid_crops

from pipeline.common.errors import FacecycleError
from pipeline.evaluate.identity_scores import SAME_PERSON, centroid, frechet_distance, identity_transfer
from pipeline.face.dlib_models import model_file
from pipeline.face.identity import FaceDescriber

A_TRAIN = ["bbaf2n", "bgbo1a", "lgil4n", "pbbc4n", "prax1a"]
A_TEST = ["sbat6n", "sbwh8p", "sgib8n", "srao1a", "srwi2n", "swbv4p"]  # the sample split's test clips


def crops(folder, names, every):
    return np.concatenate([grid_crops(folder / f"{n}.mpg", 75)[::every] for n in names])


@pytest.fixture(scope="module")
def describe():
    return FaceDescriber("detect", 216, margin=0.4)


@pytest.fixture(scope="module")
def faces(samples, describe):
    """Descriptors of real crops: train clips for the centroids, held-out test clips to classify."""
    return {
        "A_train": describe(crops(samples / "A", A_TRAIN, 25)),  # 5 clips x 3 frames
        "B_train": describe(crops(samples / "B", ["brbk7n", "lbbc2a"], 13)),  # 2 women x 6 frames
        "A_test": describe(crops(samples / "A", A_TEST, 10)),  # 6 clips x 8 frames
        "B_test": describe(crops(samples / "B", ["lrwp9a"], 15)),  # a third woman, 5 frames
    }


def test_grid_man_is_nearer_his_own_centroid_than_the_womens(faces):
    man, women = centroid(faces["A_train"], "A"), centroid(faces["B_train"], "B")
    stays = identity_transfer(faces["A_test"], target=man, source=women)
    assert stays["described"] == 48 and stays["failures"] == 0
    assert stays["identity_share"] >= 0.95  # measured 1.0
    assert stays["target_distance"] < SAME_PERSON  # same person by dlib's rule (measured 0.15)
    woman = identity_transfer(faces["B_test"], target=women, source=man)
    assert woman["identity_share"] >= 0.95  # an unseen woman is still nearer the women
    crossed = identity_transfer(faces["A_test"], target=women, source=man)
    assert crossed["identity_share"] <= 0.05 and crossed["target_distance"] > SAME_PERSON


def test_centre_square_gives_nearly_the_detected_descriptor(samples, describe):
    """face_rect=crop takes the face where crop_faces put it (its detector box plus data.margin on
    each side): on crops cut that way it finds the descriptor that HOG detection finds."""
    faces = grid_crops(samples / "A" / "sbat6n.mpg", 3)
    from_box = FaceDescriber("crop", 216, margin=0.4)(faces)
    assert np.linalg.norm(from_box - describe(faces), axis=1).max() < 0.1  # measured 0.03-0.05


def test_pytorch_resnet_gives_dlibs_own_descriptors(samples, describe):
    """pipeline.face.resnet reads dlib's .dat and must agree with dlib's ResNet on real face chips."""
    chips = [describe.chip(face) for face in grid_crops(samples / "B" / "lrwp9a.mpg", 4)]
    dlib_resnet = dlib.face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat"))
    expected = np.array([dlib_resnet.compute_face_descriptor(chip) for chip in chips])
    with torch.inference_mode():
        ours = describe.resnet(torch.from_numpy(np.stack(chips))).numpy()
    assert np.abs(ours - expected).max() < 1e-5  # measured 3.9e-7


def test_crop_without_a_face_is_a_reported_failure(samples, describe):
    frame = decode(samples / "A" / "sbat6n.mpg", 1)[0]
    background = np.stack([frame[200:272, 0:72], frame[0:72, 288:360]])  # desk and backdrop corners
    descriptors = describe(background)
    assert np.isnan(descriptors).all()
    result = identity_transfer(descriptors, np.zeros(128), np.ones(128))
    assert result["failures"] == 2 and result["identity_share"] == 0.0
    with pytest.raises(FacecycleError, match="no face found"):
        centroid(descriptors, "A_train.npy")


def test_frechet_distance_is_zero_for_one_set_and_grows_between_people(faces):
    assert abs(frechet_distance(faces["A_train"], faces["A_train"])) < 1e-6
    same = frechet_distance(faces["A_test"], faces["A_train"])
    other = frechet_distance(faces["A_test"], faces["B_train"])
    assert other > 5 * same  # measured 0.69 vs 0.02
    assert frechet_distance(faces["B_train"], faces["A_test"]) == pytest.approx(other, rel=1e-6)
