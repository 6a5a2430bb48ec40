"""`torchrun --nproc_per_node=2 stages/train.py` (DistributedDataParallel, gloo on the CPU) trains the
weights of a one-process run with the same global batch, on real GRID crops.

Each process takes every other sample of the global batch of 4; with instance norm every sample's
maths is independent, so the averaged gradients are the batch gradient up to the order of the
sums (~1e-7 relative): the losses of step 2 come from weights one update apart, 1e-4 as in
test_fast_path. Weights after two steps, the pooled fakes and the exported generators' outputs
must agree to 1e-5 plus twice what a summation order alone moves them: where a gradient is near
zero, Adam's g / (sqrt(v) + eps) turns rounding into a step of up to lr either way, which the same
one-process run on 2 threads instead of 1 shows (docs/test_tolerances.md).
Not compared: the conv biases that feed an instance norm. The norm subtracts them, so their
gradient is all rounding noise.
Later steps are not compared: early GAN training turns any rounding change chaotic (test_fast_path).
"""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.processes import ENV, kill_once_saved
from helpers.repo import GROUPS, REPO, SHIPPED, over_shipped, torch_threads, train_into
from torch import nn

from pipeline.common.params import load_group
from pipeline.models import model_class
from pipeline.train.loop import train
from pipeline.translate.infer import load_generators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = dict(batch_size=4, n_epochs=0.4, n_epochs_decay=0, log_every=1)  # 2 steps of 4 of the 20 samples


def adam_step_bound(step: int, beta1: float, beta2: float = 0.999) -> float:
    """The most Adam's step number `step` moves a weight, in units of lr: the bias-corrected moments
    are m = sum a_i g_i and v = sum b_i g_i^2 over the steps so far, so |m| / sqrt(v) <=
    sqrt(sum a_i^2 / b_i) (Cauchy-Schwarz); 1 at step 1, 1.23 at step 4 with beta1 0.5."""
    a = [(1 - beta1) * beta1 ** (step - i) / (1 - beta1 ** step) for i in range(1, step + 1)]
    b = [(1 - beta2) * beta2 ** (step - i) / (1 - beta2 ** step) for i in range(1, step + 1)]
    return math.sqrt(sum(x * x / y for x, y in zip(a, b)))


def normed_biases(model) -> set[str]:
    """Names of the conv biases that an instance norm follows."""
    names = set()
    for prefix, module in model.networks.named_modules():
        children = list(module.named_children())
        for (name, layer), (_, following) in zip(children, children[1:]):
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(following, nn.InstanceNorm2d):
                names.add(f"{prefix}.{name}.bias")
    return names


def params_file(path: Path, **changes) -> Path:
    """The tiny groups, trained for STEPS with `changes`."""
    path.write_text(yaml.safe_dump(over_shipped({"lambda_cyc": SHIPPED["lambda_cyc"], **{
        name: dict(group, **dict(STEPS, **changes)) for name, group in GROUPS.items()}})))
    return path


def torchrun_command(model: str, params: Path, faces: Path) -> list[str]:
    """`torchrun --nproc_per_node=2 stages/train.py`, outputs at the stage's default paths in the
    working directory: torchrun's own parser would claim --logs."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--",
            str(REPO / "stages" / "train.py"), model, "--params", str(params), "--faces", str(faces)]


def torchrun(model: str, params: Path, faces: Path, cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir()
    return subprocess.run(torchrun_command(model, params, faces), cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


def train_in_process(model: str, params: Path, faces: Path, out: Path, threads: int) -> Path:
    """One process on `threads` torch threads: another thread count sums in another order."""
    with torch_threads(threads):
        train_into(model, params, faces, out)
    return out


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(model, tiny_faces, tmp_path):
    params = params_file(tmp_path / "params.yaml")
    one = train_in_process(model, params, tiny_faces, tmp_path / "one", threads=1)
    reordered = train_in_process(model, params, tiny_faces, tmp_path / "reordered", threads=2)

    two = tmp_path / "two"
    done = torchrun(model, params, tiny_faces, two)
    assert done.returncode == 0, done.stderr[-3000:]

    expected = torch.load(one / "checkpoints/checkpoint.pt", weights_only=True)
    rounding = torch.load(reordered / "checkpoints/checkpoint.pt", weights_only=True)
    got = torch.load(two / f"checkpoints/{model}/checkpoint.pt", weights_only=True)
    assert got["step"] == expected["step"] == 2
    skipped = normed_biases(model_class(model)(load_group(model, params), torch.device("cpu")))
    assert skipped and len(skipped) < len(expected["networks"]) / 2
    for key, value in expected["networks"].items():
        if key not in skipped:
            spread = (rounding["networks"][key] - value).abs().max().item()
            torch.testing.assert_close(got["networks"][key], value, rtol=0, atol=1e-5 + 2 * spread, msg=key)
    assert got["losses"] == pytest.approx(expected["losses"], rel=1e-4)  # the mean over both processes' shares
    assert got["pools"]["fake_A"]["count"] == 4  # one global pool, filled from both processes' fakes
    pooled = expected["pools"]["fake_A"]["images"]
    spread = (rounding["pools"]["fake_A"]["images"] - pooled).abs().max().item()
    torch.testing.assert_close(got["pools"]["fake_A"]["images"], pooled, rtol=0, atol=1e-5 + 2 * spread)

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ours, theirs, other_order = (load_generators(path)[0] for path in (two / f"models/{model}", one / "models",
                                                                       reordered / "models"))
    for name in ("G_A", "G_B"):
        spread = (other_order[name](x) - theirs[name](x)).abs().max().item()
        torch.testing.assert_close(ours[name](x), theirs[name](x), rtol=0, atol=1e-5 + 2 * spread)
    steps = np.loadtxt(two / f"logs/{model}/plots/metrics/train/loss_G_A.tsv", skiprows=1, usecols=0)
    assert steps.tolist() == [1, 2]  # logged once, by rank 0


def test_a_global_batch_that_does_not_split_over_the_processes_is_a_one_line_error(tiny_faces, tmp_path):
    """Each process names the param and the fix, and exits before training: no traceback of the
    stage (torchrun then reports the failed children in its own words), no output."""
    params = params_file(tmp_path / "params.yaml", batch_size=3)
    done = torchrun("cyclegan", params, tiny_faces, tmp_path / "run")
    assert done.returncode != 0
    error = ("train: error: cyclegan.batch_size 3 does not split over 2 processes (it is the global batch; "
             "make it a multiple of --nproc_per_node)")
    assert done.stderr.count(error) == 2  # once per process (the two may land on one line: they write at once)
    assert not any(f'File "{REPO / code}' in done.stderr for code in ("stages", "pipeline"))  # no frame of ours
    assert list((tmp_path / "run").iterdir()) == []


def test_a_checkpoint_of_two_processes_resumes_in_one(tiny_faces, tmp_path, capfd):
    """The checkpoint holds the global batch's sampler, pools and optimisers, not per-process state:
    two processes killed after step 2 of 4, one process resumes and ends where two processes end
    uninterrupted. Both take steps 3 and 4 from the same state, so they differ only by what their
    summation orders (a batch of 4 in one process; two halves all-reduced) round. The step-4
    losses come from weights one update apart: 1e-4 (test_fast_path's derivation; an lr 1% off
    moves them 10x that, docs/test_tolerances.md). Adam's step t moves a weight by lr * m /
    sqrt(v), the moments of all steps so far: where they hold a gradient above rounding, a rounded
    gradient changes the step by about its relative rounding, eps * sqrt(K) ~ 4e-6 for the K ~ 4 *
    32 * 32 terms of a weight's gradient, times the cancellation in instance norm's backward. lr /
    20 over two steps of at most 1.23 lr allows a relative change of 2%: a cancellation of 5000x.
    Only the biases before an instance norm have a gradient that is all rounding (the norm
    subtracts them): rounding sets their steps' directions, so they end at most 2 *
    (adam_step_bound(3) + (4)) lr apart. A sampler, pool or optimiser state that resumed wrong
    moves the step-4 losses by >= 1% and most weights by ~lr."""
    params = params_file(tmp_path / "params.yaml", n_epochs=0.8, checkpoint_every=2)  # 4 steps
    two = tmp_path / "two"
    two.mkdir()
    saved = two / "checkpoints/cyclegan/checkpoint.pt"
    kill_once_saved(saved, *torchrun_command("cyclegan", params, tiny_faces), cwd=two)
    assert torch.load(saved, weights_only=True)["step"] == 2 and not (two / "models").exists()

    recipe = load_group("cyclegan", params)
    train("cyclegan", recipe, tiny_faces, two / "models/cyclegan", saved.parent, two / "logs/cyclegan")
    assert f"resuming from {saved} at step 2" in capfd.readouterr().err
    whole = tmp_path / "whole"
    done = torchrun("cyclegan", params, tiny_faces, whole)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, got = (torch.load(path, weights_only=True)
                     for path in (whole / "checkpoints/cyclegan/checkpoint.pt", saved))
    assert got["step"] == expected["step"] == 4
    assert got["losses"] == pytest.approx(expected["losses"], rel=1e-4)
    skipped = normed_biases(model_class("cyclegan")(recipe, torch.device("cpu")))
    rounded_directions = 2 * recipe.lr * sum(adam_step_bound(t, recipe.beta1) for t in (3, 4))
    for key, value in expected["networks"].items():
        off = (got["networks"][key] - value).abs().max()
        assert off <= (rounded_directions if key in skipped else recipe.lr / 20), key
