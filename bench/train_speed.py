"""Training speed of both models per profile: ms per step, images per second, peak GPU memory.

Runs the real training step (sampling, crop/flip, model.optimize) on the crop stage's A/B train
crops, resized to the profile's data.load_size when the stored crops have another size (so the
paper profile can be timed on demo crops). Same code path on CPU and CUDA.

    python bench/train_speed.py [--profiles demo paper] [--steps 50] [--warmup 5]
"""
import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from pipeline.dataset import Domain, UnpairedBatches
from pipeline.params import CycleGANParams, RecycleGANParams
from pipeline.profile import PROFILES
from pipeline.train import MODELS, pick_device

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"cyclegan": CycleGANParams, "recyclegan": RecycleGANParams}


def resized(domain: Domain, size: int) -> Domain:
    if domain.load_size == size:
        return domain
    images = domain.images.permute(0, 3, 1, 2).float()
    images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return Domain(images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous(), domain.starts, domain.frames)


def time_model(name: str, profile: dict, faces: Path, device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per training step, after `warmup` steps."""
    model_cls, frames = MODELS[name]
    params = PARAMS[name](**profile[name])
    a, b = (resized(Domain.load(faces, d, frames, device), profile["data"]["load_size"]) for d in "AB")
    batches = UnpairedBatches(a, b, params.crop_size, params.batch_size, params.seed)
    model = model_cls(params, device)
    for _ in range(warmup):
        model.optimize(next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        losses = model.optimize(next(batches))
    torch.stack(list(losses.values())).sum().item()  # wait for the device
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["demo"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--faces", type=Path, default=REPO / "data" / "faces")
    args = parser.parse_args()
    device = pick_device()
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})")
    for name in args.profiles:
        profile = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
        per_step = {}
        for model in MODELS:
            per_step[model] = time_model(model, profile, args.faces, device, args.steps, args.warmup)
            batch = profile[model].get("batch_size", 1)
            peak = f", peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device.type == "cuda" else ""
            print(f"{name:6s} {model:10s} {per_step[model] * 1000:8.1f} ms/step {batch / per_step[model]:7.2f} img/s{peak}")
        print(f"{name:6s} recyclegan / cyclegan step time: {per_step['recyclegan'] / per_step['cyclegan']:.2f}x")


if __name__ == "__main__":
    main()
