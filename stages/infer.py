"""Stage infer: translate the face crops of every test video with each trained model."""
import argparse
from pathlib import Path

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.common.device import pick_device
from pipeline.common.params import load_group
from pipeline.models import MODELS
from pipeline.translate.infer import translate_videos
from pipeline.translate.stabilise import Stabiliser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", default="data/faces", help="crop_faces output (boxes.csv, <domain>_test.npy)")
    parser.add_argument("--models", nargs="+", default=[f"models/{m}" for m in MODELS],
                        help="model folders (generators.safetensors + architecture.json)")
    parser.add_argument("--out", default="data/translated", help="writes <out>/<model>/<video>.npy and _rec.npy")
    args = stage_arguments(parser)
    params = load_group("infer", args.params)
    device = pick_device(params.device, "infer.device")
    stabiliser = Stabiliser.from_params(params) if params.temporal == "flow" else None
    for model_dir in map(Path, args.models):
        videos = translate_videos(model_dir, args.faces, Path(args.out) / model_dir.name, params.batch_size, device,
                                  params.compile, stabiliser)
        print(f"infer: {model_dir.name}: {len(videos)} test videos translated on {device}, temporal {params.temporal}")


if __name__ == "__main__":
    run_stage(main)
