"""Training speed of CycleGAN or Recycle-GAN: ms per step, images per second, achieved TFLOP/s, peak memory.

Runs the real training step (sampling, crop/flip on the device, model.optimize with the step
options the train stage would use) on the crop stage's A/B train crops, resized to the profile's
load size (so the paper recipe can be timed on demo crops). The paper recipe by default;
`--size` shrinks the crops (and the U-Net depth of Recycle-GAN's predictors) to run on a CPU.
FLOPs are counted by torch's FlopCounterMode on one eager step (convolutions and matrix products,
forward and backward), never assumed. Times follow `--warmup` steps (and the compile, if any)
and wait for the GPU.

    python bench/train_speed.py [--model cyclegan recyclegan] [--profile paper] [--batch-size 8]
                                [--size 256] [--steps 20] [--warmup 5] [--compile | --no-compile]
                                [--channels-last | --no-channels-last] [--no-layout-opt] [--cuda-graphs]
                                [--trace STEPS]
"""
import argparse
import dataclasses
import math
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from pipeline.common.device import StepOptions, pick_device
from pipeline.common.params import PRECISIONS, load_group
from pipeline.models import MODELS, model_class
from pipeline.train.dataset import Domain, UnpairedBatches

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"  # its profiles give the recipes


def resized(domain: Domain, size: int) -> Domain:
    if domain.load_size == size:
        return domain
    images = domain.images.permute(0, 3, 1, 2).float()
    images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return Domain(images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous(), domain.starts, domain.frames)


def recipe(model: str, profile: str, size: int | None, batch_size: int | None, compile: bool | None,
           precision: str | None = None):
    """The profile's params for `model` and its load size, at `size` px, `batch_size` and `precision` when given."""
    params = load_group(model, PARAMS, profile)  # the whole group and the top-level lambda_cyc
    load_size = load_group("data", PARAMS, profile).load_size
    if size:
        load_size = round(size * load_size / params.crop_size)
        params = dataclasses.replace(params, crop_size=size)
        if model == "recyclegan":  # as deep as the profile's U-Net allows at this size (unet_256 at 256 px)
            params = dataclasses.replace(params, predictor_downs=min(params.predictor_downs, int(math.log2(size & -size))))
    changes = {k: v for k, v in (("batch_size", batch_size), ("compile", compile), ("precision", precision))
               if v is not None}
    params = dataclasses.replace(params, **changes)
    params.validate()
    return params, load_size


def step_options(device: torch.device, params, channels_last: bool | None) -> StepOptions:
    """The train stage's options for `params` on `device`, in the layout asked for (None: the stage's)."""
    options = StepOptions.for_device(device, params.compile, params.precision)
    return options if channels_last is None else dataclasses.replace(options, channels_last=channels_last)


def layout(options: StepOptions) -> str:
    name = "channels_last" if options.channels_last else "NCHW"
    return name + ("" if options.layout_opt else ", layout optimisation by inductor's heuristic")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> tuple[float, str]:
    """GiB: the most tensor memory allocated on the GPU, or the process's peak resident size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "GPU allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "host RSS"


def device_line(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'
    return f"device {device} ({name})"


def figures(seconds: float, flops: int, items: int, device: torch.device, per: str, rate: str, each: str) -> str:
    """'<ms>/<per>, <items/s> <rate>, GFLOP/<each>, TFLOP/s, peak memory' for `items` done in `seconds`."""
    peak, where = peak_memory(device)
    return (f"{seconds * 1000:.1f} ms/{per}, {items / seconds:.2f} {rate}, {flops / items / 1e9:.2f} GFLOP/{each}, "
            f"{flops / seconds / 1e12:.4f} TFLOP/s, peak {peak:.2f} GiB ({where})")


def count_flops(work) -> int:
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


def profile_steps(model, batches, device: torch.device, steps: int) -> str:
    """Where the time of `steps` steps goes: the costliest kernels or ops, launches and busy time per step."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            model.optimize(next(batches))
        synchronize(device)
    wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    # the kernels' own rows (the ops that launch them repeat their time)
    busy = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA) / steps / 1000
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    table = events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=15)
    gpu = f", GPU busy {busy:.1f} ms, {launches / steps:.0f} kernel launches" if cuda else ""
    return f"{table}\nper step (profiled, {steps} steps): wall {wall * 1000:.1f} ms{gpu}"


def time_model(name: str, params, options: StepOptions, load_size: int, faces: Path, device: torch.device,
               steps: int, warmup: int, trace: int) -> tuple[float, int, str]:
    """(seconds per training step after `warmup` steps, FLOPs of one step, profile of `trace` more steps or '')."""
    model_cls = model_class(name)
    frames = model_cls.frames_per_sample
    a, b = (resized(Domain.load(faces, d, frames, device), load_size) for d in "AB")
    batches = UnpairedBatches(a, b, params.crop_size, params.batch_size, params.seed)
    # an eager model, built inside the count (weight init has no convolutions) and freed after it
    flops = count_flops(lambda: model_cls(dataclasses.replace(params, compile=False), device).optimize(next(batches)))
    model = model_cls(params, device, options)
    for _ in range(warmup):
        model.optimize(next(batches))
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        model.optimize(next(batches))
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    return seconds, flops, profile_steps(model, batches, device, trace) if trace else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--profile", default="paper", help="params.yaml's profile that gives the recipe (default paper)")
    parser.add_argument("--batch-size", type=int, help="global batch (default: the profile's)")
    parser.add_argument("--size", type=int, help="crop size in px (default: the profile's; Recycle-GAN: a multiple of 32)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="default: the profile's")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="default: the profile's (auto: bf16 autocast where the CPU has bf16 instructions)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                        help="activation layout (default: the train stage's, NCHW)")
    parser.add_argument("--no-layout-opt", action="store_true",
                        help="leave inductor's convolution layout optimisation to its heuristic (CUDA)")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="compile in reduce-overhead mode: CUDA graph replays (needs compile)")
    parser.add_argument("--trace", type=int, default=0, metavar="STEPS",
                        help="after timing, profile this many steps and print where their time goes")
    parser.add_argument("--faces", type=Path, default=REPO / "data" / "faces")
    args = parser.parse_args()
    device = pick_device()
    print(device_line(device))
    for name in args.model:
        params, load_size = recipe(name, args.profile, args.size, args.batch_size, args.compile, args.precision)
        options = step_options(device, params, args.channels_last)
        if args.no_layout_opt:
            options = dataclasses.replace(options, layout_opt=False)
        if args.cuda_graphs:
            if not params.compile:
                parser.error("--cuda-graphs replays compiled graphs: it needs compile (--compile)")
            options = dataclasses.replace(options, cuda_graphs=True)
        seconds, flops, report = time_model(name, params, options, load_size, args.faces, device, args.steps,
                                            args.warmup, args.trace)
        print(f"{name:10s} {args.profile} batch {params.batch_size} {params.crop_size} px "
              f"compile {'on' if params.compile else 'off'}{' (CUDA graphs)' * options.cuda_graphs}, {layout(options)}, "
              f"{'bf16' if options.bf16 else 'fp32'}: "
              + figures(seconds, flops, params.batch_size, device, "iter", "img/s", "img"), flush=True)
        if report:
            print(report, flush=True)


if __name__ == "__main__":
    main()
