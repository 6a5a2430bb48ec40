"""The fast training step computes the plain fp32 step's maths: same losses over the first steps,
on real GRID crops with tiny networks, for both models.

Tolerances follow the arithmetic each option changes. fp32 options (channels_last, fused Adam,
torch.compile) only reorder sums: ~1e-6 relative over the first 4 steps, 1e-3 leaves a 10x margin
while a wrong gradient shows at once (torch's instance_norm on the CPU gave 4% at step 2). Later
steps are not compared: early GAN training is chaotic, and any rounding change (even 2 threads
instead of 1) grows ~10x per step from step 5 in Recycle-GAN at batch 1. bf16 keeps 8 mantissa
bits: ~0.4% per op, ~1% on the first losses, growing with the steps, hence 5% over 3 steps.
"""
import dataclasses
import os
import shutil

import pytest
import torch

from conftest import GROUPS
from pipeline.dataset import Domain, UnpairedBatches
from pipeline.nets import ResnetGenerator, init_weights
from pipeline.params import CycleGANParams, RecycleGANParams
from pipeline.runtime import StepOptions, pick_device
from pipeline.train import MODEL_CLASSES

PARAMS = {"cyclegan": CycleGANParams, "recyclegan": RecycleGANParams}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
pytestmark = pytest.mark.usefixtures("one_thread")


def step_losses(model: str, options: StepOptions, faces, steps: int, device: torch.device, **changes) -> list[dict]:
    """The losses of the first `steps` training steps of `model` run with `options`."""
    model_cls, frames = MODEL_CLASSES[model]
    params = PARAMS[model](**dict(GROUPS[model], **changes))
    a, b = (Domain.load(faces, d, frames, device) for d in "AB")
    batches = UnpairedBatches(a, b, params.crop_size, params.batch_size, params.seed)
    trained = model_cls(params, device, options)
    return [{k: v.item() for k, v in trained.optimize(next(batches)).items()} for _ in range(steps)]


def assert_close(got: list[dict], expected: list[dict], rtol: float) -> None:
    for step, (g, e) in enumerate(zip(got, expected), 1):
        assert g == pytest.approx(e, rel=rtol), f"step {step}"


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_channels_last_and_fused_adam_give_the_losses_of_the_plain_path(model, batch_size, tiny_faces):
    cpu = torch.device("cpu")
    plain = step_losses(model, StepOptions(), tiny_faces, 4, cpu, batch_size=batch_size)
    fast = step_losses(model, StepOptions(channels_last=True, fused_adam=True), tiny_faces, 4, cpu,
                       batch_size=batch_size)
    assert_close(fast, plain, rtol=1e-3)


def test_bf16_autocast_gives_the_losses_of_the_plain_path_within_bf16_rounding(tiny_faces):
    cpu = torch.device("cpu")
    plain = step_losses("cyclegan", StepOptions(), tiny_faces, 3, cpu)
    assert_close(step_losses("cyclegan", StepOptions(bf16=True), tiny_faces, 3, cpu), plain, rtol=5e-2)


@pytest.mark.skipif(not shutil.which(os.environ.get("CXX") or "g++"),
                    reason="torch.compile (inductor) on the CPU needs a C++ compiler: none found")
def test_compiled_networks_give_the_losses_of_the_eager_ones(tiny_faces):
    cpu = torch.device("cpu")
    eager = step_losses("cyclegan", StepOptions(fused_adam=True), tiny_faces, 2, cpu)
    compiled = step_losses("cyclegan", StepOptions(fused_adam=True, compile=True), tiny_faces, 2, cpu)
    assert_close(compiled, eager, rtol=1e-3)


def weight_gradient_errors(options: StepOptions, device: torch.device, batch_size: int) -> dict[str, float]:
    """Relative error against float64 of each conv weight's gradient in a small generator run with `options`."""
    torch.manual_seed(0)
    reference = init_weights(ResnetGenerator(ngf=8, n_blocks=2)).double()
    fast = init_weights(ResnetGenerator(ngf=8, n_blocks=2)).to(device, memory_format=options.memory_format)
    fast.load_state_dict(reference.state_dict())
    x = torch.rand(batch_size, 3, 64, 64, dtype=torch.float64) * 2 - 1
    (reference(x) - 0.3).abs().mean().backward()
    with options.autocast(device):
        out = fast(x.float().to(device).contiguous(memory_format=options.memory_format))
    (out.float() - 0.3).abs().mean().backward()
    return {name: ((q.grad.double().cpu() - p.grad).norm() / p.grad.norm()).item()
            for (name, p), q in zip(reference.named_parameters(), fast.parameters()) if name.endswith("weight")}


def test_cuda_compile_options_are_settings_torch_compile_knows():
    """The CUDA path's inductor options, checked where no GPU is: torch.compile refuses an unknown key at once."""
    for options in (StepOptions(), StepOptions(cuda_graphs=True), StepOptions(layout_opt=False)):
        torch.compile(torch.nn.Conv2d(3, 3, 3), dynamic=False, options=options.compile_options(torch.device("cuda")))
    assert StepOptions().compile_options(torch.device("cpu")) is None


@CUDA
@pytest.mark.parametrize("batch_size", [1, 2])
def test_channels_last_gradients_on_the_gpu_match_float64(batch_size, monkeypatch):
    """The fast path's layout at the one-sample batches where torch's CPU instance norm broke.

    fp32 with TF32 off: only summation order differs (~1e-6); the CPU bug's errors were of order 1.
    """
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    errors = weight_gradient_errors(StepOptions(channels_last=True), pick_device(), batch_size)
    assert max(errors.values()) < 1e-3, errors


@CUDA
@pytest.mark.parametrize("batch_size", [1, 2])
def test_bf16_gradients_on_the_gpu_are_as_close_to_float64_as_bf16_on_the_cpu(batch_size):
    """bf16 rounding alone moves these gradients a lot: at initialisation instance norm's backward
    cancels most of each sum, and the first layers' gradients land ~20% from float64 (measured on
    an H100 and with CPU autocast alike). So the GPU fast path is held to the CPU's bf16 autocast, an
    independent implementation of the same rounding: a wrong kernel would stand out against it."""
    gpu = weight_gradient_errors(StepOptions.for_device(pick_device()), pick_device(), batch_size)
    cpu = weight_gradient_errors(StepOptions(bf16=True), torch.device("cpu"), batch_size)
    for name in gpu:
        assert gpu[name] < 1.5 * cpu[name] + 1e-3, (name, gpu[name], cpu[name])


@CUDA
@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
def test_cuda_fast_path_gives_the_losses_of_the_plain_path_and_never_waits_for_the_gpu(model, tiny_faces):
    device = pick_device()
    plain = step_losses(model, StepOptions(), tiny_faces, 3, device, batch_size=2)
    fast = step_losses(model, StepOptions.for_device(device), tiny_faces, 3, device, batch_size=2)
    assert_close(fast, plain, rtol=5e-2)

    model_cls, frames = MODEL_CLASSES[model]
    params = PARAMS[model](**dict(GROUPS[model], batch_size=2))
    a, b = (Domain.load(tiny_faces, d, frames, device) for d in "AB")
    batches = UnpairedBatches(a, b, params.crop_size, params.batch_size, params.seed)
    trained = model_cls(params, device)
    trained.optimize(next(batches))  # first step: allocations and lazy initialisation may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trained.optimize(next(batches))
    finally:
        torch.cuda.set_sync_debug_mode("default")


@CUDA
@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
def test_cuda_graph_replays_give_the_losses_of_the_plain_path(model, tiny_faces):
    """Each graph warms up at its first call (step 1), records at its second and replays from its
    third (step 3), reusing its output memory: a tensor read after its graph replayed again would
    show as a wrong loss at step 3."""
    device = pick_device()
    plain = step_losses(model, StepOptions(), tiny_faces, 3, device, batch_size=2)
    replayed = dataclasses.replace(StepOptions.for_device(device, compile=True), cuda_graphs=True)
    assert_close(step_losses(model, replayed, tiny_faces, 3, device, batch_size=2), plain, rtol=5e-2)
