"""Where and how the networks run, shared by training, translation and metrics: the device, the
step options (precision, layout, compile) and the conversions of uint8 crops to network inputs and
back. Kept apart from the training loop so translation and metrics import none of it.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from pipeline.common.errors import FacecycleError


def pick_device(requested: str = "auto", param: str = "device") -> torch.device:
    """`auto`: CUDA when present (under torchrun the GPU of this process's LOCAL_RANK), else the
    CPU; `cuda` without a CUDA device fails naming the `param` that asked for it."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise FacecycleError(f"params: {param}: cuda requested but no CUDA device is available")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    return device


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bf16 instructions (avx512_bf16 or amx_bf16 among the flags of
    /proc/cpuinfo, or of `cpuinfo`): CPU autocast pays only there, elsewhere oneDNN emulates bf16
    and a step is several times slower (docs/measurements/speed.md). False where the flags cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def resolve_precision(precision: str, device: torch.device) -> str:
    """`bf16` or `fp32` for a training run: `auto` is bf16 autocast on CUDA and on a CPU with bf16
    instructions, fp32 elsewhere; `bf16` and `fp32` force it."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "fp32"


@dataclass(frozen=True)
class StepOptions:
    """How the step runs. None of it changes the maths, only rounding and speed.

    channels_last: NHWC activations (the tensor cores' layout; off by default, see for_device);
    bf16: autocast (weights, optimiser and losses stay fp32); fused_adam: one Adam kernel for all
    parameters; compile: torch.compile each network, which fuses the memory-bound instance norm,
    padding and elementwise chains; layout_opt: see compile_options; cuda_graphs: each compiled
    graph replays as one CUDA graph (inductor's "reduce-overhead" mode) instead of hundreds of
    launches (for launch-bound steps such as the paper's batch 1; CUDA only, needs compile; under
    test, docs/measurements/speed.md).
    """

    channels_last: bool = False
    bf16: bool = False
    fused_adam: bool = False
    compile: bool = False
    layout_opt: bool = True
    cuda_graphs: bool = False

    @classmethod
    def for_device(cls, device: torch.device, compile: bool = False, precision: str | None = None) -> "StepOptions":
        """Fused Adam, NCHW, and bf16 autocast as training's `precision` resolves (`resolve_precision`);
        without one (translation), bf16 on CUDA only (docs/measurements/speed.md).

        Measured on an H100, NCHW beats channels_last in every case: torch's group norm copies a
        channels_last input to NCHW on the GPU, which costs more than cuDNN's own layout change. On
        the CPU channels_last and compile are no faster.
        """
        bf16 = device.type == "cuda" if precision is None else resolve_precision(precision, device) == "bf16"
        return cls(bf16=bf16, fused_adam=True, compile=compile)

    def compile_options(self, device: torch.device) -> dict | None:
        """Inductor options for torch.compile. On CUDA: CUDA graphs when asked, and the convolution
        layout optimisation forced on unless layout_opt is off: compiled graphs then keep
        activations channels_last between their own kernels while the norms stay fused (inductor's
        heuristic leaves it off for CycleGAN's 64->3 and 512->1 convolutions). Measured on an H200,
        batch 8: 104.9 -> 113.7 img/s (docs/measurements/speed.md). On the CPU inductor already picks it
        for oneDNN convolutions."""
        if device.type != "cuda":
            return None
        return {"force_layout_optimization": self.layout_opt, "triton.cudagraphs": self.cuda_graphs}

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> ContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)


def replica_group() -> tuple[int, int]:
    """(rank, world size) of this process when torchrun started several; (0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_compiler(device: torch.device, group: str) -> None:
    """torch.compile on the CPU builds C++ kernels: fail at once, naming the param, when no compiler is found."""
    compiler = os.environ.get("CXX") or "g++"
    if device.type == "cpu" and not shutil.which(compiler):
        raise FacecycleError(f"params: {group}.compile: torch.compile on the CPU needs a C++ compiler "
                             f"({compiler} not found; set CXX or {group}.compile false)")


def to_model_input(crops: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 crops [B, S, S, 3] -> float [B, 3, size, size] in [-1, 1], the whole crop resized
    (bilinear, antialiased): the official test-time input (its test options set load size = crop size)."""
    x = crops.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
