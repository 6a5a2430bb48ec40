"""`torchrun --nproc_per_node=2 stages/train.py` (DistributedDataParallel, gloo on the CPU) trains the
weights of a one-process run with the same global batch, on real GRID crops.

Each process takes every other sample of the global batch of 4; with instance norm every sample's
maths is independent, so the averaged gradients are the batch gradient up to the order of the
sums (~1e-7 relative). Two steps are compared: weights to 1e-5, a twentieth of one Adam step of
lr 2e-4 (measured: ~1e-8, and up to 1.5e-6 for single weights whose gradient is near zero, where
Adam's g / (|g| + eps) turns rounding into a visible change); the exported generators' outputs to
1e-5. Not compared: the conv biases that feed an instance norm. The norm subtracts them, so their
gradient is rounding noise, which Adam scales up to steps of ~lr either way; they change no output.
Later steps are not compared: early GAN training turns any rounding change chaotic (test_fast_path).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from pipeline.params import load_group
from pipeline.train import MODELS, train
from pipeline.translate import load_generators
from tests.test_train import GROUPS, faces  # noqa: F401 - the tiny groups and their crops fixture

REPO = Path(__file__).resolve().parents[1]
STEPS = dict(batch_size=4, n_epochs=0.4, n_epochs_decay=0, log_every=1)  # 2 steps of 4 of the 20 samples


def normed_biases(model) -> set[str]:
    """Names of the conv biases that an instance norm follows."""
    names = set()
    for prefix, module in model.networks.named_modules():
        children = list(module.named_children())
        for (name, layer), (_, following) in zip(children, children[1:]):
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(following, nn.InstanceNorm2d):
                names.add(f"{prefix}.{name}.bias")
    return names


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(model, faces, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({name: dict(group, **STEPS) for name, group in GROUPS.items()}))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = tmp_path / "one"
        train(model, load_group(model, params), faces, one / "models", one / "checkpoints", one / "logs")
    finally:
        torch.set_num_threads(threads)

    two = tmp_path / "two"
    two.mkdir()  # outputs at the stage's default paths: torchrun's parser would claim --logs
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--",
                           str(REPO / "stages" / "train.py"), model, "--params", str(params), "--faces", str(faces)],
                          cwd=two, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    expected = torch.load(one / "checkpoints/checkpoint.pt", weights_only=True)
    got = torch.load(two / f"checkpoints/{model}/checkpoint.pt", weights_only=True)
    assert got["step"] == expected["step"] == 2
    skipped = normed_biases(MODELS[model][0](load_group(model, params), torch.device("cpu")))
    assert skipped and len(skipped) < len(expected["networks"]) / 2
    for key, value in expected["networks"].items():
        if key not in skipped:
            torch.testing.assert_close(got["networks"][key], value, rtol=0, atol=1e-5, msg=key)
    assert got["losses"] == pytest.approx(expected["losses"], rel=1e-5)  # the mean over both processes' shares
    assert got["pools"]["fake_A"]["count"] == 4  # one global pool, filled from both processes' fakes
    torch.testing.assert_close(got["pools"]["fake_A"]["images"], expected["pools"]["fake_A"]["images"], rtol=0, atol=1e-5)

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ours, _ = load_generators(two / f"models/{model}")
    theirs, _ = load_generators(one / "models")
    for name in ("G_A", "G_B"):
        torch.testing.assert_close(ours[name](x), theirs[name](x), rtol=0, atol=1e-5)
    steps = np.loadtxt(two / f"logs/{model}/plots/metrics/train/loss_G_A.tsv", skiprows=1, usecols=0)
    assert steps.tolist() == [1, 2]  # logged once, by rank 0
