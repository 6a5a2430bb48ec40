"""Instance norm computed as group norm (pipeline.models.nets.InstanceNorm) against torch's instance_norm.

nets.InstanceNorm uses group norm with one group per channel because torch's CPU instance_norm
gives wrong input gradients for one-sample channels_last batches. This times both kernels inside
the paper generator (forward and backward, the step's precision on this device) so the choice is
measured on the GPU too, and checks that the two give the same output and gradients.

    python bench/norm_speed.py [--batch-size 8] [--size 256] [--steps 20]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from train_speed import device_line, synchronize  # bench/, beside this script

from pipeline.common.device import StepOptions, pick_device
from pipeline.models.nets import InstanceNorm, ResnetGenerator, init_weights


def instance_norm(self, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, eps=self.eps)


def run(generator, x: torch.Tensor, options: StepOptions, device: torch.device, steps: int):
    """(seconds per forward+backward, output, first-layer weight gradient) of `generator` on `x`."""
    def step():
        generator.zero_grad(set_to_none=True)
        with options.autocast(device):
            out = generator(x)
        out.float().square().mean().backward()
        return out

    for _ in range(3):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        out = step()
    synchronize(device)
    return (time.perf_counter() - start) / steps, out.float(), next(generator.parameters()).grad.clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = pick_device()
    options = StepOptions.for_device(device)
    found = compare_norms(args.batch_size, args.size, args.steps, device, options)
    print(f"{device_line(device)}, batch {args.batch_size}, {args.size} px, bf16 {options.bf16}, "
          f"channels_last {options.channels_last}: generator forward+backward")
    print(f"group_norm {found['group_s'] * 1000:.1f} ms, instance_norm {found['instance_s'] * 1000:.1f} ms, "
          f"ratio instance/group {found['instance_s'] / found['group_s']:.2f}; relative difference: output "
          f"{found['output_error']:.1e}, first-layer gradient {found['gradient_error']:.1e}")


def compare_norms(batch_size: int, size: int, steps: int, device: torch.device, options: StepOptions) -> dict:
    """Seconds per forward+backward of the paper generator with each kernel (group_s, instance_s) and
    the relative differences of their outputs and first-layer gradients."""
    torch.manual_seed(0)
    generator = init_weights(ResnetGenerator()).to(device, memory_format=options.memory_format)
    x = (torch.rand(batch_size, 3, size, size, device=device) * 2 - 1).contiguous(memory_format=options.memory_format)
    group_s, group_out, group_grad = run(generator, x, options, device, steps)
    group_norm_forward = InstanceNorm.forward
    InstanceNorm.forward = instance_norm
    try:
        inst_s, inst_out, inst_grad = run(generator, x, options, device, steps)
    finally:
        InstanceNorm.forward = group_norm_forward
    return {"group_s": group_s, "instance_s": inst_s,
            "output_error": ((group_out - inst_out).norm() / inst_out.norm()).item(),
            "gradient_error": ((group_grad - inst_grad).norm() / inst_grad.norm()).item()}


if __name__ == "__main__":
    main()
