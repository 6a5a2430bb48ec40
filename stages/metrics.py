"""Stage metrics: temporal consistency, identity transfer, realism and reconstruction of every translated test video."""
import argparse
from pathlib import Path

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.common.params import load_group
from pipeline.evaluate.metrics import MergedVideos, evaluate
from pipeline.evaluate.report import read_changed, write_report
from pipeline.models import MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", default="data/faces", help="crop_faces output (boxes.csv, <domain>_<split>.npy)")
    parser.add_argument("--translated", default="data/translated", help="infer output (<model>/<video>.npy, _rec.npy)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="model names under --translated")
    parser.add_argument("--results", help="merge_video output (<model>/<video>.mp4): also score the merged videos")
    parser.add_argument("--frames", default="data/frames", help="extract_frames output (the merged videos' sources)")
    parser.add_argument("--changed", help="merge_video's changed.csv (pixels changed per video and model) for the report")
    parser.add_argument("--out", default="metrics",
                        help="writes summary.json, translation.json, translation.csv, report.md, plots/")
    args = stage_arguments(parser)
    params = load_group("metrics", args.params)
    margin = load_group("data", args.params).margin
    changed = read_changed(args.changed) if args.changed else None
    merged = MergedVideos(Path(args.results), Path(args.frames)) if args.results else None
    evaluation = evaluate(args.faces, args.translated, params, margin, tuple(args.models), merged)
    write_report(evaluation, args.out, changed)
    print(f"metrics: {evaluation.videos['video'].nunique()} test videos scored; see {args.out}/report.md")


if __name__ == "__main__":
    run_stage(main)
