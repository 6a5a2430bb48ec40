"""Translation speed of the infer stage: frames per second, ms per batch, achieved TFLOP/s, peak memory.

Times pipeline.translate.translate_batches, as the infer stage runs it: uint8 face crops from the
host, resize to the model's crop size, generator and the reconstruction pass (bf16 and
channels_last on CUDA), uint8 results back on the host. The generators have the profile's
architecture (paper by default; only speed is measured, so their weights are the initial ones);
`--size` shrinks the crops to run on a CPU. FLOPs come from FlopCounterMode on one batch.

    python bench/infer_speed.py [--model cyclegan] [--profile paper] [--batch-size 64] [--size 256]
                                [--batches 20] [--warmup 3]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.crop_outputs import load_crops
from pipeline.dataset import Domain
from pipeline.nets import ResnetGenerator, init_weights
from pipeline.train import MODELS
from pipeline.translate import pick_device, translate_batches
from train_speed import REPO, count_flops, device_line, figures, recipe, resized, synchronize  # bench/, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="cyclegan", help="whose generator architecture")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--batch-size", type=int, default=64, help="crops per forward pass (the infer group's batch_size)")
    parser.add_argument("--size", type=int, help="crop size in px (default: the profile's)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--faces", type=Path, default=REPO / "data" / "faces")
    args = parser.parse_args()
    device = pick_device("auto")
    params, load_size = recipe(args.model, args.profile, args.size, None, None)
    crops = torch.from_numpy(np.ascontiguousarray(load_crops(args.faces, "A", "train")))
    crops = resized(Domain(crops, torch.zeros(0), 1), load_size).images.numpy()
    picks = np.arange(args.batch_size * (args.batches + args.warmup)) % len(crops)
    batches = [crops[picks[i:i + args.batch_size]] for i in range(0, len(picks), args.batch_size)]
    forward, backward = (init_weights(ResnetGenerator(ngf=params.ngf, n_blocks=params.n_blocks, upsample=params.upsample))
                         for _ in range(2))
    translate = lambda part: list(translate_batches(forward, backward, part, params.crop_size, device))  # noqa: E731
    flops = count_flops(lambda: translate(batches[:1]))
    translate(batches[:args.warmup])
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    translate(batches[args.warmup:])
    seconds = (time.perf_counter() - start) / args.batches
    print(device_line(device))
    print(f"{args.model:10s} {args.profile} G ngf {params.ngf} {params.n_blocks} blocks, batch {args.batch_size} "
          f"{load_size} -> {params.crop_size} px: "
          + figures(seconds, flops, args.batch_size, device, "batch", "frames/s", "frame"), flush=True)


if __name__ == "__main__":
    main()
