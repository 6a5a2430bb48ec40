"""Frames per second of the data half of the pipeline, decode, extract and crop, on the GRID sample
clips or on videos you name (at least two; they take domains A and B in turn).

Decode is pipeline.video.iter_frames alone (the floor); extract is the extract_frames stage's work
(decode + JPEG-encoding into the frame store, whose size it prints against raw frames); crop is the crop_faces stage's work (cuts, sparse detection, tracking,
crops, and the 68 landmarks of the test faces) with `data.detect_every` and `data.test_share` from
params.yaml (each clip's test segment) and, for comparison, with the detector on every frame.

    python bench/data_speed.py [--repeat 3] [--videos a.mp4 b.mp4 ...]
"""
import argparse
import dataclasses
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.crop import crop_faces
from pipeline.frames import extract_frames
from pipeline.params import load_group
from pipeline.video import iter_frames, probe
from timing import best_seconds  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]


def rate(work, frames: int, repeat: int) -> float:
    """Frames per second of the fastest of `repeat` runs of work()."""
    return frames / best_seconds(work, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    parser.add_argument("--videos", type=Path, nargs="+", help="time these videos instead of data/samples")
    args = parser.parse_args()
    if args.videos and len(args.videos) < 2:
        parser.error("--videos: give at least two (their domains alternate A, B, A, ...)")
    params = load_group("data", REPO / "params.yaml")
    clips = [p.resolve() for p in args.videos] if args.videos else sorted((REPO / "data" / "samples").glob("[AB]/*.mpg"))
    domains = "AB" * len(clips) if args.videos else [c.parent.name for c in clips]
    with tempfile.TemporaryDirectory() as tmp:
        raw, frames_dir = Path(tmp) / "raw", Path(tmp) / "frames"
        raw.mkdir()
        names = [f"v{i}_{clip.stem}" for i, clip in enumerate(clips)]  # two clips may share a file name
        for name, clip in zip(names, clips):
            (raw / f"{name}{clip.suffix}").symlink_to(clip)
        pd.DataFrame({"name": names, "domain": list(domains[:len(clips)]), "split": None,  # test_share of each
                      "file": [f"{n}{c.suffix}" for n, c in zip(names, clips)], "sha256": None, "start": None, "end": None}
                     ).to_csv(raw / "videos.csv", index=False)
        infos = [probe(clip) for clip in clips]
        count, raw_bytes = sum(i.frames for i in infos), sum(i.frames * i.height * i.width * 3 for i in infos)
        sizes = ", ".join(sorted({f"{i.width}x{i.height}" for i in infos}))
        print(f"{len(clips)} {'videos' if args.videos else 'GRID clips'}, {count} frames of {sizes} "
              f"(data.detect_every={params.detect_every})")

        def extract() -> None:
            frames_dir.mkdir(exist_ok=True)
            extract_frames(raw, frames_dir, None, params.jpeg_quality).to_csv(frames_dir / "videos.csv", index=False)

        rates = {"decode (iter_frames)": rate(lambda: [None for clip in clips for _ in iter_frames(clip)],
                                              count, args.repeat),
                 "extract_frames": rate(extract, count, args.repeat)}
        stored = sum(f.stat().st_size for f in frames_dir.glob("*.mjpeg"))
        print(f"frame store (jpeg_quality {params.jpeg_quality}): {stored / 2**20:.1f} MiB, raw frames "
              f"{raw_bytes / 2**20:.1f} MiB ({raw_bytes / stored:.1f}x smaller)")
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
