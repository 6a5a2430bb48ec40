"""Speed and quality of the result videos' H.264 encoding, per libx264 preset (CPU, one thread each).

merge_video encodes three videos per test video (two models' results and the side-by-side
comparison). This bench encodes real frames with the stage's writer at each preset and the
configured crf, and prints ms per frame, the file's bit rate, and the PSNR of the decoded video
against the frames given (RGB, 8-bit, from the mean squared error over the clip): what a faster
preset costs in quality and bytes.

Inputs: the GRID sample test clip `sbat6n` (360x288, as stored by the frame stage) and its
three-panel comparison layout (1080x288), and the 640x360 Pexels clip of the tests' real clips
when fetched (tests/clips/fetch_robustness.py): a face filling a third of the frame.

    python bench/encode_speed.py [--presets medium fast faster veryfast superfast] [--crf 18] [--frames 75]
"""
import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.evaluate.reconstruction import psnr
from pipeline.store.video import VideoWriter, iter_frames, probe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from clips.fetch_robustness import FOLDER as ROBUSTNESS  # noqa: E402 - the tests' fetched real clips

GRID_CLIP = REPO / "data" / "samples" / "A" / "sbat6n.mpg"
PEXELS = ROBUSTNESS / "woman_occlusion_pexels.mp4"


def decoded(path: Path, count: int) -> np.ndarray:
    """The first `count` frames of `path`, [N, H, W, 3] uint8."""
    return np.stack([rgb for *_, rgb in itertools.islice(iter_frames(path), count)])


def encode(frames: np.ndarray, path: Path, fps: float, crf: int, preset: str) -> float:
    """Seconds to encode `frames` to `path`."""
    height, width = frames[0].shape[:2]
    start = time.perf_counter()
    with VideoWriter(path, fps, width, height, crf=crf, preset=preset) as out:
        for rgb in frames:
            out.write(rgb)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["medium", "fast", "faster", "veryfast", "superfast"])
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--repeat", type=int, default=3, help="encodes per preset; the fastest is kept")
    args = parser.parse_args()
    grid = decoded(GRID_CLIP, args.frames)
    inputs = {"GRID 360x288": grid,
              "comparison 1080x288": np.concatenate([grid, grid[:, :, ::-1], grid[:, ::-1]], axis=2)}
    if PEXELS.is_file():
        inputs["Pexels 640x360"] = decoded(PEXELS, args.frames)
    else:
        print(f"({PEXELS} missing: `python tests/clips/fetch_robustness.py` adds the Pexels clip)")
    fps = probe(GRID_CLIP).fps
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in inputs.items():
            height, width = frames[0].shape[:2]
            print(f"\n{name} ({width}x{height}), {len(frames)} frames, crf {args.crf}")
            print(f"{'preset':>10} {'ms/frame':>9} {'x ' + args.presets[0]:>12} {'kbit/s':>8} {'PSNR dB':>8}")
            base = None
            for preset in args.presets:
                path = Path(tmp) / f"{preset}.mp4"
                took = min(encode(frames, path, fps, args.crf, preset) for _ in range(args.repeat))
                back = decoded(path, len(frames))
                quality = psnr(frames, back)  # over the clip, as the metrics stage's PSNR
                kbits = path.stat().st_size * 8 / 1000 / (len(frames) / fps)
                ms = 1000 * took / len(frames)
                base = base or ms
                print(f"{preset:>10} {ms:9.2f} {ms / base:12.2f} {kbits:8.0f} {quality:8.2f}")


if __name__ == "__main__":
    main()
