"""Frames per second of the data half of the pipeline on the GRID sample clips: decode, extract, crop.

Decode is pipeline.video.iter_frames alone (the floor); extract is the extract_frames stage's work
(decode + JPEG-encoding into the frame store, whose size it prints against raw frames); crop is the crop_faces stage's work (cuts, sparse detection, tracking,
crops) with `data.detect_every` from params.yaml and, for comparison, with the detector on every frame.

    python bench/data_speed.py [--repeat 3]
"""
import argparse
import dataclasses
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.crop import crop_faces
from pipeline.frames import extract_frames
from pipeline.params import load_group
from pipeline.video import iter_frames
from timing import best_seconds  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]


def rate(work, frames: int, repeat: int) -> float:
    """Frames per second of the fastest of `repeat` runs of work()."""
    return frames / best_seconds(work, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    args = parser.parse_args()
    params = load_group("data", REPO / "params.yaml")
    clips = sorted((REPO / "data" / "samples").glob("[AB]/*.mpg"))
    with tempfile.TemporaryDirectory() as tmp:
        raw, frames_dir = Path(tmp) / "raw", Path(tmp) / "frames"
        raw.mkdir()
        for clip in clips:
            (raw / clip.name).symlink_to(clip)
        pd.DataFrame({"name": [c.stem for c in clips], "domain": [c.parent.name for c in clips], "split": "train",
                      "file": [c.name for c in clips], "sha256": None, "start": None, "end": None}
                     ).to_csv(raw / "videos.csv", index=False)
        count = sum(1 for clip in clips for _ in iter_frames(clip))
        print(f"{len(clips)} GRID clips, {count} frames of 360x288 (data.detect_every={params.detect_every})")

        def extract() -> None:
            frames_dir.mkdir(exist_ok=True)
            extract_frames(raw, frames_dir, None, params.jpeg_quality).to_csv(frames_dir / "videos.csv", index=False)

        rates = {"decode (iter_frames)": rate(lambda: [None for clip in clips for _ in iter_frames(clip)],
                                              count, args.repeat),
                 "extract_frames": rate(extract, count, args.repeat)}
        stored = sum(f.stat().st_size for f in frames_dir.glob("*.mjpeg"))
        print(f"frame store (jpeg_quality {params.jpeg_quality}): {stored / 2**20:.1f} MiB, raw frames "
              f"{count * 288 * 360 * 3 / 2**20:.1f} MiB ({count * 288 * 360 * 3 / stored:.1f}x smaller)")
        dense = dataclasses.replace(params, detect_every=1)
        for name, setting in (("crop_faces", params), ("crop_faces, detector on every frame", dense)):
            rates[name] = rate(lambda: crop_faces(frames_dir, Path(tmp) / "faces", setting), count, args.repeat)
    decode = rates["decode (iter_frames)"]
    for name, fps in rates.items():
        print(f"{name:38s} {fps:8.1f} frames/s   {fps / decode:6.3f} x decode")
    print(f"crop_faces / extract_frames: {rates['crop_faces'] / rates['extract_frames']:.3f}; "
          f"sparse / dense detection: {rates['crop_faces'] / rates['crop_faces, detector on every frame']:.2f}x")


if __name__ == "__main__":
    main()
