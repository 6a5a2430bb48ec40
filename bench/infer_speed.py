"""Translation speed of the infer stage: frames per second, ms per batch, achieved TFLOP/s, peak memory.

Times pipeline.translate.infer.translate_batches, as the infer stage runs it: uint8 face crops from the
host, resize to the model's crop size, generator and the reconstruction pass (bf16 on CUDA),
uint8 results back on the host; `--compile` as with `infer.compile: true`. The generators have
the profile's architecture (paper by default; only speed is measured, so their weights are the
initial ones); `--size` shrinks the crops to run on a CPU. `--no-reconstruction` times the
translation alone, `--channels-last` the other layout. FLOPs come from FlopCounterMode on one
eager batch. Then the temporal stabiliser (`infer.temporal: flow`, params.yaml's settings, always
on the CPU) on consecutive real crops at 64 and 256 px: ms per frame, and its share of the
translation's time per frame at the timed size.

    python bench/infer_speed.py [--model cyclegan] [--profile paper] [--batch-size 64] [--size 256]
                                [--batches 20] [--warmup 3] [--no-reconstruction] [--compile]
                                [--channels-last | --no-channels-last]
"""
import argparse
import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import best_seconds  # bench/, beside this script
from train_speed import (  # bench/, beside this script
    REPO,
    count_flops,
    device_line,
    figures,
    layout,
    recipe,
    resized,
    synchronize,
)

from pipeline.common.device import StepOptions, pick_device
from pipeline.common.params import load_group
from pipeline.models import MODELS
from pipeline.models.nets import ResnetGenerator, init_weights
from pipeline.store.faces import load_crops
from pipeline.train.dataset import Domain
from pipeline.translate.infer import translate_batches
from pipeline.translate.stabilise import Stabiliser

INFER = load_group("infer", REPO / "params.yaml")
STABILISER = Stabiliser.from_params(INFER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="cyclegan", help="whose generator architecture")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--batch-size", type=int, default=64, help="crops per forward pass (the infer group's batch_size)")
    parser.add_argument("--size", type=int, help="crop size in px (default: the profile's)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reconstruction", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the reconstruction pass, as the infer stage does (default on)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generators (infer.compile)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                        help="activation layout (default: the infer stage's, NCHW)")
    parser.add_argument("--faces", type=Path, default=REPO / "data" / "faces")
    parser.add_argument("--stabilise-frames", type=int, default=40, help="consecutive crops the stabiliser is timed on")
    args = parser.parse_args()
    device = pick_device()
    options = StepOptions.for_device(device, args.compile)  # as the infer stage builds them
    if args.channels_last is not None:
        options = dataclasses.replace(options, channels_last=args.channels_last)
    params, load_size = recipe(args.model, args.profile, args.size, None, None)
    seconds, flops = time_translation(params, load_size, args.faces, args.batch_size, args.batches, args.warmup,
                                      args.reconstruction, device, options)
    print(device_line(device))
    passes = "G + reconstruction" if args.reconstruction else "G only"
    print(f"{args.model:10s} {args.profile} {passes}, ngf {params.ngf} {params.n_blocks} blocks, batch {args.batch_size} "
          f"{load_size} -> {params.crop_size} px, compile {'on' if args.compile else 'off'}, "
          f"{layout(options)}: "
          + figures(seconds, flops, args.batch_size, device, "batch", "frames/s", "frame"), flush=True)
    per_frame = seconds / args.batch_size
    clip = np.asarray(load_crops(args.faces, "A", "train")[:args.stabilise_frames])
    for size in (64, 256):
        ms = stabilise_ms(clip, size)
        ratio = f", {ms / 1000 / per_frame:.2f}x the translation's time per frame" if size == params.crop_size else ""
        print(f"stabilise  {size} px on the CPU, {STABILISER.settings()}: {ms:.1f} ms/frame{ratio}", flush=True)


def time_translation(params, load_size: int, faces: Path, batch_size: int, batches: int, warmup: int,
                     reconstruction: bool, device: torch.device, options: StepOptions) -> tuple[float, int]:
    """(seconds per batch after `warmup` batches, FLOPs of one batch) of translating train crops of
    domain A as the infer stage does, with the reconstruction pass or without."""
    eager = dataclasses.replace(options, compile=False)  # FlopCounterMode counts the eager ops
    crops = torch.from_numpy(np.ascontiguousarray(load_crops(faces, "A", "train")))
    crops = resized(Domain(crops, torch.zeros(0), 1), load_size).images.numpy()
    picks = np.arange(batch_size * (batches + warmup)) % len(crops)
    parts = [crops[picks[i:i + batch_size]] for i in range(0, len(picks), batch_size)]
    forward, backward = (init_weights(ResnetGenerator(ngf=params.ngf, n_blocks=params.n_blocks, upsample=params.upsample))
                         for _ in range(2))
    backward = backward if reconstruction else None
    flops = count_flops(lambda: list(translate_batches(forward, backward, parts[:1], params.crop_size, device, eager)))
    translate = lambda part: list(translate_batches(forward, backward, part, params.crop_size, device, options))  # noqa: E731
    translate(parts[:warmup])
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    translate(parts[warmup:])
    return (time.perf_counter() - start) / batches, flops


def stabilise_ms(clip: np.ndarray, size: int) -> float:
    """Milliseconds per frame of the stabiliser on `clip` resized to `size` (the translation: the input
    with its own noise per frame, so every neighbour carries weight as in a real translation)."""
    inputs = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA if size < c.shape[0] else cv2.INTER_CUBIC)
                       for c in clip])
    outputs = (inputs + np.random.default_rng(0).normal(0, 6, inputs.shape)).clip(0, 255).astype(np.uint8)
    frame, shot = np.arange(len(clip)), np.zeros(len(clip), np.int64)
    return best_seconds(lambda: list(STABILISER(outputs, inputs, frame, shot))) * 1000 / len(clip)


if __name__ == "__main__":
    main()
