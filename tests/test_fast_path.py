"""The fast training step computes the plain fp32 step's maths: same losses over the first steps,
on real GRID crops with tiny networks, for both models.

The CPU tests compare each step one update apart (`one_update_apart`): the option's path takes
every step from the plain path's state before it, so a compared pair of losses differs by the
forward pass's rounding plus what one update's rounding moves the next loss. Two free-running
trajectories would compound that: early GAN training is chaotic, and a rounding change alone (2
threads instead of 1, AVX-512 instead of AVX2 kernels) grows to ~1e-3 by step 4
(docs/test_tolerances.md).

fp32 options (channels_last, fused Adam, torch.compile) reorder sums. Forward: each conv output of
these networks sums K <= 196 products (7x7x4), each norm and loss mean up to 3*3*32*32 terms;
float32 rounding moves a sum by ~sqrt(K) eps (eps = 6e-8) relative, ~1e-6 through the ~20 layers
of G and D. Update: Adam's first step is lr * sign(g), later ones lr * m / sqrt(v); rounding
changes a weight's step by its gradient's relative rounding, and turns its direction only where
the gradient is itself rounding noise (|g| ~ 0), where the moved weight changes the next loss
only to second order. So a pair differs by ~1e-6, and 1e-4 leaves 100x. A real error is far
above it: with lr 1% off the first step's lr * sign(g) is 1% off for every weight, 1% of a step's
change of the losses (~13%: docs/test_tolerances.md); a skipped optimiser step is all of
it; torch's CPU instance_norm bug in channels_last moved the losses 4% at step 2.
bf16 keeps 8 mantissa bits: ~0.4% per rounding of an activation, ~1% on the losses; its gradients
land ~20% from fp32 where instance norm's backward cancels most of a sum, which turns many
weights' Adam direction and moves the next loss by up to ~20% of one step's change: 5e-2.
"""
import copy
import dataclasses
import os
import shutil

import pytest
import torch
from helpers.repo import GROUPS, shipped_params

from pipeline.common.device import StepOptions, pick_device
from pipeline.models import model_class
from pipeline.models.nets import ResnetGenerator, init_weights
from pipeline.train.dataset import Domain, UnpairedBatches

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
pytestmark = pytest.mark.usefixtures("one_thread")


def training(model: str, faces, device: torch.device, **changes):
    """The class of `model`, its tiny params with `changes`, and the batches it trains on."""
    model_cls = model_class(model)
    frames = model_cls.frames_per_sample
    params = shipped_params(model, **dict(GROUPS[model], **changes))
    a, b = (Domain.load(faces, d, frames, device) for d in "AB")
    return model_cls, params, UnpairedBatches(a, b, params.crop_size, params.batch_size, params.seed)


def step_losses(model: str, options: StepOptions, faces, steps: int, device: torch.device, **changes) -> list[dict]:
    """The losses of the first `steps` training steps of `model` run with `options`."""
    model_cls, params, batches = training(model, faces, device, **changes)
    trained = model_cls(params, device, options)
    return [as_floats(trained.optimize(next(batches))) for _ in range(steps)]


def take_state(model, source) -> None:
    """`model` takes `source`'s weights, Adam moments and image pools (the state a step starts from)
    and keeps its own Adam settings (lr, betas, fused), which load_state_dict would overwrite. The
    moments take their parameter's memory format: torch's fused CPU Adam reads a channels_last
    parameter and NCHW moments element by element in memory order, which mixes them up."""
    model.networks.load_state_dict(source.networks.state_dict())
    for name, optimizer in model.optimizers.items():
        settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        optimizer.load_state_dict(copy.deepcopy(source.optimizers[name].state_dict()))  # not sharing `step`
        for group, own in zip(optimizer.param_groups, settings):
            group.update(own)
        for param, state in optimizer.state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = torch.empty_like(param).copy_(state[key])
    for name, pool in model.pools.items():
        pool.load_state_dict(copy.deepcopy(source.pools[name].state_dict()))


def one_update_apart(model: str, options: StepOptions, faces, steps: int, **changes) -> tuple[list[dict], list[dict]]:
    """The losses of the first `steps` CPU training steps run with `options`, each step taken from
    the plain path's state one step earlier plus one update of its own, and the plain path's
    losses: every pair is one update apart."""
    cpu = torch.device("cpu")
    model_cls, params, batches = training(model, faces, cpu, **changes)
    plain, other = model_cls(params, cpu, StepOptions()), model_cls(params, cpu, options)
    got, expected = [], []
    for _ in range(steps):
        batch = next(batches)
        got.append(as_floats(other.optimize(batch)))  # from the plain state one step back, plus its own update
        take_state(other, plain)
        expected.append(as_floats(plain.optimize(batch)))
        other.optimize(batch)  # its own update from the plain path's state
    return got, expected


def as_floats(losses: dict) -> dict[str, float]:
    return {k: v.item() for k, v in losses.items()}


def assert_close(got: list[dict], expected: list[dict], rtol: float) -> None:
    for step, (g, e) in enumerate(zip(got, expected), 1):
        assert g == pytest.approx(e, rel=rtol), f"step {step}"


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_channels_last_and_fused_adam_give_the_losses_of_the_plain_path(model, batch_size, tiny_faces):
    fast = StepOptions(channels_last=True, fused_adam=True)
    assert_close(*one_update_apart(model, fast, tiny_faces, 4, batch_size=batch_size), rtol=1e-4)


def test_bf16_autocast_gives_the_losses_of_the_plain_path_within_bf16_rounding(tiny_faces):
    assert_close(*one_update_apart("cyclegan", StepOptions(bf16=True), tiny_faces, 3), rtol=5e-2)


@pytest.mark.skipif(not shutil.which(os.environ.get("CXX") or "g++"),
                    reason="torch.compile (inductor) on the CPU needs a C++ compiler: none found")
def test_compiled_networks_give_the_losses_of_the_plain_path(tiny_faces):
    compiled = StepOptions(fused_adam=True, compile=True)
    assert_close(*one_update_apart("cyclegan", compiled, tiny_faces, 2), rtol=1e-4)


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

    model_cls, params, batches = training(model, tiny_faces, device, batch_size=2)
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
