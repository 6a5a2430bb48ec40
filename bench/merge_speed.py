"""Throughput of the infer and merge_video stages on real GRID frames and crops (CPU unless CUDA is present).

infer: crops per second of one generator pass plus the reconstruction pass, at several batch sizes.
merge: milliseconds per frame of paste-back alone for each mask and blend mode (with and without
colour matching), and of the whole merge of one video with the default params (two models pasted,
three H.264 encodes: two results and the comparison).

    python bench/merge_speed.py [--frames 75] [--load-size 72] [--crop-size 64] [--ngf 16] [--n-blocks 3]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from pipeline.common.device import pick_device
from pipeline.common.params import BLENDS, MASKS
from pipeline.models import MODELS
from pipeline.models.nets import ResnetGenerator, init_weights
from pipeline.store.faces import load_landmarks, read_boxes
from pipeline.store.frames import load_frames
from pipeline.translate.infer import translate_batches
from pipeline.translate.merge_video import merge_test_videos, merged_frames

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from clips.fetch_robustness import FOLDER as ROBUSTNESS  # noqa: E402 - the tests' fetched real clips
from helpers.merge_inputs import write_inputs  # noqa: E402 - the tests' real-input helper
from helpers.repo import shipped_params  # noqa: E402 - the shipped params.yaml
from timing import best_seconds  # noqa: E402 - bench/, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=75, help="frames of the GRID test clip")
    parser.add_argument("--load-size", type=int, default=72, help="crop size stored by crop_faces (demo: 72)")
    parser.add_argument("--crop-size", type=int, default=64, help="generator input size (demo: 64)")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--n-blocks", type=int, default=3)
    args = parser.parse_args()
    if not (ROBUSTNESS / "woman_occlusion_pexels.mp4").is_file():
        sys.exit(f"merge_speed: error: {ROBUSTNESS}/woman_occlusion_pexels.mp4 missing: get it with "
                 "`python tests/clips/fetch_robustness.py`")
    device = pick_device()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = write_inputs(tmp, REPO / "data" / "samples", ROBUSTNESS, load_size=args.load_size,
                              test_frames=args.frames)
        rows = read_boxes(inputs["faces"], "test")
        rows = rows[rows["video"] == "sbat6n"]
        crops = np.load(inputs["faces"] / "A_test.npy")
        frames, _ = load_frames(inputs["frames"], "sbat6n", args.frames)
        G_A, G_B = (init_weights(ResnetGenerator(ngf=args.ngf, n_blocks=args.n_blocks)) for _ in range(2))
        print(f"device {device}, torch threads {torch.get_num_threads()}; G ngf {args.ngf}, {args.n_blocks} blocks, "
              f"{args.load_size} -> {args.crop_size} px; GRID sbat6n, {len(rows)} frames 360x288")
        for batch in (1, 4, 16, 64):
            batches = [crops[i:i + batch] for i in range(0, len(crops), batch)]
            took = best_seconds(lambda: list(translate_batches(G_A, G_B, batches, args.crop_size, device)))
            print(f"  infer batch {batch:3d}: {len(crops) / took:8.1f} crops/s (G_A + G_B)")
        faces = list(translate_batches(G_A, G_B, [crops], args.crop_size, device))[0][0]
        landmarks = load_landmarks(inputs["faces"], rows)
        for mask in MASKS:
            for blend in BLENDS:
                for color in (False, True):
                    params = shipped_params("merge", mask=mask, blend=blend, color_match=color)
                    took = best_seconds(lambda: list(merged_frames(frames.iter_at(rows["frame"]), rows, faces, crops,
                                                                   landmarks, params)))
                    print(f"  paste, mask {mask:6s} blend {blend:7s} color_match={color!s:5s}: "
                          f"{1000 * took / len(rows):6.2f} ms/frame (decode included)")
        for name in MODELS:
            (tmp / "translated" / name).mkdir(parents=True)
            for video, n in rows.groupby("video").size().items():
                np.save(tmp / "translated" / name / f"{video}.npy", faces[:n])
            np.save(tmp / "translated" / name / "wall.npy", faces[:0])
        took = best_seconds(lambda: merge_test_videos(inputs["frames"], inputs["faces"], inputs["raw"],
                                                 [tmp / "translated" / "cyclegan", tmp / "translated" / "recyclegan"],
                                                 tmp / "results", shipped_params("merge")), repeat=1)
        total = len(read_boxes(inputs["faces"], "test"))
        print(f"  merge_video (2 models, 3 encodes): {1000 * took / total:6.2f} ms/frame over {total} frames")


if __name__ == "__main__":
    main()
