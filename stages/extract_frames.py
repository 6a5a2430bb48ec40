"""Stage extract_frames: decode every fetched video into one Motion-JPEG frame file and a frame table."""
import argparse
from pathlib import Path

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.common.files import atomic_dir
from pipeline.common.params import load_group
from pipeline.data.extract_frames import extract_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", default="data/raw", help="fetch output (videos.csv and the video files)")
    parser.add_argument("--out", default="data/frames", help="writes <out>/<name>.mjpeg, <out>/<name>.csv, <out>/videos.csv")
    args = stage_arguments(parser)
    params = load_group("data", args.params)
    with atomic_dir(args.out) as tmp:
        table = extract_frames(Path(args.raw), tmp, params.fps, params.jpeg_quality)
        table.to_csv(tmp / "videos.csv", index=False)
    print(f"extract_frames: {table['frames'].sum()} frames of {len(table)} videos in {args.out}/")


if __name__ == "__main__":
    run_stage(main)
