"""Whose face is it? dlib's 128-d face descriptor, and the main person of a video's shots.

The descriptor (dlib's ResNet, `face_recognition_models`) maps faces of one person close together:
dlib calls two faces the same person below a distance of 0.6. crop_faces uses it to keep one
person per video; the metrics (pipeline.evaluate.identity_scores) to score identity transfer.
"""
from __future__ import annotations

from typing import Sequence

import dlib
import numpy as np
import torch
from tqdm import tqdm

from pipeline.common.sampling import evenly_spaced
from pipeline.face.dlib_models import chip_landmark_model, descriptor_model, dlib_map, face_detector, face_rectangle
from pipeline.face.geometry import resize_square
from pipeline.face.resnet import CHIP_SIZE

# Shots of one video whose mean descriptors are closer than this show one person. Measured on the
# shared clips (3 faces per clip or shot): one person across clips or shots 0.11-0.27 (GRID s1,
# Megamind's two characters), two people 0.56-0.89, some pairs below dlib's 0.6.
SAME_PERSON_ACROSS_SHOTS = 0.4
FACES_PER_SHOT = 3  # faces described per shot, evenly spaced over its track


class FaceDescriber:
    """Descriptors of face crops: resize to `face_size`, find the face rectangle, 5 landmarks, the
    aligned 150 px chip (dlib), then dlib's ResNet run by PyTorch (pipeline.face.resnet), batched.

    The rectangle is either dlib's HOG detection in the resized crop (`detect`; a crop where it
    finds no face gets no descriptor: a failure) or the crop's centre square of side
    face_size / (1 + 2 * margin), where crop_faces put the detector's box (`crop`; never fails).
    `at_boxes` describes faces at known detector boxes in whole frames instead.
    """

    def __init__(self, face_rect: str = "crop", face_size: int = 216, margin: float = 0.0, batch_size: int = 32):
        self.face_size, self.batch_size = face_size, batch_size
        self.detect = face_rect == "detect"
        self.centre = face_rectangle(face_size / 2, face_size / 2, face_size, margin)
        self.landmarks = chip_landmark_model()
        self.resnet = descriptor_model()

    def _rectangle(self, image: np.ndarray) -> dlib.rectangle | None:
        if not self.detect:
            return self.centre
        faces = face_detector()(image, 0)
        return max(faces, key=lambda r: r.area()) if len(faces) else None

    def chip(self, crop: np.ndarray) -> np.ndarray | None:
        """The aligned face chip [150, 150, 3] of one uint8 RGB crop (dlib's default padding 0.25),
        or None where no face is found."""
        image = resize_square(np.ascontiguousarray(crop), self.face_size)
        rect = self._rectangle(image)
        if rect is None:
            return None
        return dlib.get_face_chip(image, self.landmarks(image, rect), size=CHIP_SIZE, padding=0.25)

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray, desc: str = "describe faces") -> np.ndarray:
        """Descriptors [N, 128] of crops [N, H, W, 3]; rows of NaN mark failures."""
        descriptors = np.full((len(crops), 128), np.nan)
        with tqdm(total=len(crops), desc=desc, unit="face", leave=False) as bar:
            for start in range(0, len(crops), self.batch_size):
                batch = range(start, min(start + self.batch_size, len(crops)))
                chips = dict(zip(batch, dlib_map(self.chip, (crops[i] for i in batch))))
                found = [i for i, chip in chips.items() if chip is not None]
                if found:
                    batch = torch.from_numpy(np.stack([chips[i] for i in found]))
                    descriptors[found] = self.resnet(batch).numpy()
                bar.update(len(chips))
        return descriptors

    @torch.inference_mode()
    def at_boxes(self, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors [N, 128] of the faces at detector boxes (x0, y0, x1, y1) in uint8 RGB frames."""
        chips = [dlib.get_face_chip(image, self.landmarks(image, dlib.rectangle(*(int(round(v)) for v in box))),
                                    size=CHIP_SIZE, padding=0.25)
                 for image, box in zip((np.ascontiguousarray(f) for f in frames), boxes)]
        return self.resnet(torch.from_numpy(np.stack(chips))).numpy()


def main_person_shots(frames: Sequence[np.ndarray], tracks: Sequence[dict[int, np.ndarray]],
                      describe: FaceDescriber) -> list[bool]:
    """Which shots' face tracks show the video's main person (shots without a face: True).

    Each shot with a face gets the mean descriptor of FACES_PER_SHOT of its faces; shots join the
    first group, longest shots first, whose mean is within SAME_PERSON_ACROSS_SHOTS, and the group
    with the most face frames is the main person. A video of one shot is never described.
    """
    shots = [i for i, track in enumerate(tracks) if track]
    if len(shots) < 2:
        return [True] * len(tracks)
    length = {i: max(tracks[i]) - min(tracks[i]) + 1 for i in shots}
    means = {}
    for i in shots:
        keys = sorted(tracks[i])
        picked = [keys[j] for j in evenly_spaced(len(keys), FACES_PER_SHOT)]
        means[i] = describe.at_boxes([frames[k] for k in picked], [tracks[i][k] for k in picked]).mean(axis=0)
    groups: list[list[int]] = []
    for i in sorted(shots, key=lambda i: -length[i]):
        near = [g for g in groups if np.linalg.norm(means[i] - np.mean([means[j] for j in g], axis=0))
                < SAME_PERSON_ACROSS_SHOTS]
        if near:
            near[0].append(i)
        else:
            groups.append([i])
    main = max(groups, key=lambda g: sum(length[i] for i in g))
    return [not track or i in main for i, track in enumerate(tracks)]
