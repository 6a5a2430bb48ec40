"""Stage crop_faces: find the main face in every extracted frame, split train/test, write square face crops."""
import argparse
import json
from pathlib import Path

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.common.files import atomic_file
from pipeline.common.params import load_group
from pipeline.data.crop_faces import crop_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", default="data/frames", help="extract_frames output (videos.csv, <name>.mjpeg/.csv)")
    parser.add_argument("--out", default="data/faces", help="writes boxes.csv and <domain>_<split>.npy")
    parser.add_argument("--metrics", default="metrics/crop.json", help="frames, faces, detection rate, box jitter")
    args = stage_arguments(parser)
    params = load_group("data", args.params)
    summary = crop_faces(Path(args.frames), Path(args.out), params)
    with atomic_file(args.metrics) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    for video in summary["faceless_test_videos"]:
        print(f"crop_faces: warning: no face found in test video {video} "
              f"({summary['videos'][video]['frames']} frames): its results will be the source video, unchanged")
    print(f"crop_faces: {summary['faces']} faces in {summary['frames']} frames "
          f"(detection rate {summary['detection_rate']:.4f}) in {args.out}/")


if __name__ == "__main__":
    run_stage(main)
