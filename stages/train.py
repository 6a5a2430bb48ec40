"""Stages train_cyclegan and train_recyclegan: learn G_A (A -> B) and G_B (B -> A) from unpaired face crops.

`python stages/train.py cyclegan` trains CycleGAN, `... recyclegan` Recycle-GAN (same-shot frame
triplets), each with its params group. Re-running after a kill resumes from the checkpoint when
params and inputs are unchanged. `torchrun --nproc_per_node=N stages/train.py cyclegan` trains on
N GPUs (DistributedDataParallel); the group's batch_size is the global batch and must divide by N.
"""
import argparse
import os
from pathlib import Path

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.common.params import load_group
from pipeline.models import MODELS
from pipeline.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", choices=sorted(MODELS), help="which model (and params group) to train")
    parser.add_argument("--faces", default="data/faces", help="crop_faces output (A/B_train.npy, boxes.csv)")
    parser.add_argument("--out", help="writes generators.safetensors, architecture.json (default models/<model>)")
    parser.add_argument("--checkpoints", help="resumable training state (default checkpoints/<model>)")
    parser.add_argument("--logs", help="dvclive metrics, plots and sample grids (default logs/<model>)")
    args = stage_arguments(parser)
    out, checkpoints, logs = (Path(path or f"{kind}/{args.model}") for path, kind in
                              ((args.out, "models"), (args.checkpoints, "checkpoints"), (args.logs, "logs")))
    params = load_group(args.model, args.params)
    losses = train(args.model, params, Path(args.faces), out, checkpoints, logs)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, once
        print(f"train_{args.model}: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()) + f"; generators in {out}/")


if __name__ == "__main__":
    run_stage(main)
