"""Milliseconds per frame of each metric of the metrics stage, on real GRID face crops (72 px).

Temporal: the input's forward + backward Farneback flow and occlusion mask (once per pair, shared
by all models), then per output the warping error and tOF. Identity: dlib's descriptor with the
face found by HOG (`detect`) or taken from the crop geometry (`crop`): the chip (dlib: resize,
rectangle, landmarks, alignment) and the whole descriptor; its ResNet in PyTorch (ours) against
dlib's own. Motion fidelity: a face's mouth and eye openings (ten landmark fits). Reconstruction:
PSNR, SSIM.
Also what the demo's metrics stage costs with params.yaml's sampling, from these rates.

    python bench/metrics_speed.py [--frames 75] [--faces 20]
"""
import argparse
import sys
import time
from pathlib import Path

import dlib
import numpy as np
import torch

from pipeline.common.params import load_group
from pipeline.common.runs import consecutive_pairs
from pipeline.evaluate.identity_scores import frechet_distance
from pipeline.evaluate.motion_fidelity import FaceMotion
from pipeline.evaluate.reconstruction import psnr, ssim
from pipeline.face.dlib_models import model_file
from pipeline.face.identity import FaceDescriber
from pipeline.translate.temporal import input_motion, pair_tof, pair_warping_error

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers.translation_layout import grid_crops  # noqa: E402 - the tests' real-crop helper

OPENINGS = "mouth + eye openings, 10 fits (per face)"


def ms_per(work, count: int) -> float:
    """Milliseconds per item of the second run of work() (the first warms caches and oneDNN up)."""
    work()
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=75, help="frames of the clip for the temporal and PSNR/SSIM rates")
    parser.add_argument("--faces", type=int, default=20, help="crops described per descriptor setting")
    args = parser.parse_args()
    params, data = load_group("metrics", REPO / "params.yaml"), load_group("data", REPO / "params.yaml")
    clip = grid_crops(REPO / "data" / "samples" / "A" / "sbat6n.mpg", args.frames, data.load_size)
    flicker = (clip * np.where(np.arange(len(clip)) % 2, 1.0, 0.8)[:, None, None, None]).round().astype(np.uint8)
    pairs = consecutive_pairs(np.arange(len(clip)), np.zeros(len(clip)))
    motion = input_motion(clip, pairs)
    flows = list(motion)
    rates = {
        "input flow fw+bw + mask (per pair)": ms_per(lambda: list(motion), len(pairs)),
        "warping error (per pair)": ms_per(lambda: [pair_warping_error(flicker[i], flicker[i + 1], fw, ok)
                                                    for i, fw, ok in flows], len(pairs)),
        "tOF (per pair)": ms_per(lambda: [pair_tof(flicker[i], flicker[i + 1], fw) for i, fw, _ in flows], len(pairs)),
        "PSNR (per frame)": ms_per(lambda: psnr(clip, flicker), len(clip)),
        "SSIM (per frame)": ms_per(lambda: ssim(clip, flicker), len(clip)),
    }
    faces = clip[:args.faces]
    descriptors = {}
    for rect in ("detect", "crop"):
        describe = FaceDescriber(rect, params.face_size, data.margin)
        rates[f"face chip, face_rect={rect} (per face)"] = ms_per(lambda: [describe.chip(f) for f in faces], len(faces))
        rates[f"descriptor, face_rect={rect} (per face)"] = ms_per(lambda: descriptors.update({rect: describe(faces)}),
                                                                  len(faces))
    motion_of = FaceMotion(params.face_size, describe.centre)
    rates[OPENINGS] = ms_per(lambda: motion_of(faces), len(faces))
    chips = [describe.chip(f) for f in faces]
    dlib_resnet = dlib.face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat"))
    with torch.inference_mode():
        rates["ResNet in PyTorch, batched (per face)"] = ms_per(lambda: describe.resnet(torch.from_numpy(np.stack(chips))),
                                                               len(chips))
    rates["ResNet in dlib (per face)"] = ms_per(lambda: [dlib_resnet.compute_face_descriptor(c) for c in chips], len(chips))
    rates["Frechet distance (per call, 128-d)"] = ms_per(lambda: frechet_distance(descriptors["detect"],
                                                                                   descriptors["crop"]), 1)
    print(f"{args.frames} frames of GRID sbat6n cropped to {data.load_size} px; descriptors at face_size {params.face_size}")
    for name, ms in rates.items():
        print(f"  {name:45s} {ms:8.2f} ms")
    descriptor = rates[f"descriptor, face_rect={params.face_rect} (per face)"]
    temporal = (rates["input flow fw+bw + mask (per pair)"]
                + 2 * (rates["warping error (per pair)"] + rates["tOF (per pair)"]))
    print(f"descriptor / temporal work per frame (input + 2 models): {descriptor / temporal:.1f}x")
    test_frames, train_faces = 7 * 75, 2 * (params.centroid_frames or 1350)  # the samples: 7 test clips
    described = 3 * 7 * -(-75 // params.identity_every) + train_faces  # input + 2 models per clip
    print(f"demo estimate ({test_frames} test frames, identity_every={params.identity_every}, "
          f"centroid_frames={params.centroid_frames}): {described} descriptors = {described * descriptor / 1000:.0f} s, "
          f"temporal {test_frames * temporal / 1000:.1f} s, openings (input + 2 models, raw and stabilised) "
          f"{5 * test_frames * rates[OPENINGS] / 1000:.1f} s")


if __name__ == "__main__":
    main()
