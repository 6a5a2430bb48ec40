"""Stage merge_video: paste translated faces back into the test videos, encode them with their audio, compare."""
import argparse
from pathlib import Path

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.common.params import load_group
from pipeline.models import MODELS
from pipeline.translate.merge_video import merge_test_videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", default="data/frames", help="extract_frames output")
    parser.add_argument("--faces", default="data/faces", help="crop_faces output")
    parser.add_argument("--raw", default="data/raw", help="fetch output (source audio)")
    parser.add_argument("--translated", nargs="+", default=[f"data/translated/{m}" for m in MODELS],
                        help="infer output, one folder per model (its name names the model)")
    parser.add_argument("--out", default="results", help="writes <out>/<model>/<video>.mp4 and <out>/compare/")
    args = stage_arguments(parser)
    params = load_group("merge", args.params)
    videos = merge_test_videos(Path(args.frames), Path(args.faces), Path(args.raw), [Path(d) for d in args.translated],
                               Path(args.out), params)
    print(f"merge_video: {len(videos)} test videos merged into {args.out}/")


if __name__ == "__main__":
    run_stage(main)
