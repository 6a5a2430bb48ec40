"""The training loop on real GRID face crops: exact resume after a kill, fingerprints, divergence,
learning, exported generators and dvclive logs. Tiny networks on 32 px crops keep it fast."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from pipeline.errors import FacecycleError
from pipeline.nets import ResnetGenerator
from pipeline.params import load_group
from pipeline.train import SAMPLES, train
from tests.real_crops import write_faces

REPO = Path(__file__).resolve().parents[1]
TINY = dict(crop_size=32, ngf=4, ndf=4, n_blocks=1, n_epochs=1, n_epochs_decay=1, log_every=5, sample_every=20,
            checkpoint_every=10, pool_size=4)  # a small pool fills up and swaps within the run
GROUPS = {"cyclegan": TINY, "recyclegan": dict(TINY, predictor_downs=5)}
# One thread, here and in the stage subprocesses: bit-exact comparisons need one summation order, and
# on a shared 2-core machine OpenMP threads spinning against each other make steps 10x slower.
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces(tmp_path_factory, samples):
    """10 frames of two A clips and one B clip at 40 px: an epoch is 20 samples (16 triplets)."""
    clips = {"A": [samples / "A/bbaf2n.mpg", samples / "A/bbiz1s.mpg"], "B": [samples / "B/brbk7n.mpg"]}
    return write_faces(tmp_path_factory.mktemp("faces"), clips, size=40, frames=10)


def params_file(path: Path, **changes) -> Path:
    """A params.yaml with the tiny groups; `changes` as group=dict(key=value)."""
    groups = {name: dict(values, **changes.get(name, {})) for name, values in GROUPS.items()}
    path.write_text(yaml.safe_dump(groups))
    return path


def run(model: str, params: Path, faces: Path, out: Path) -> dict:
    return train(model, load_group(model, params), faces, out / "models", out / "checkpoints", out / "logs")


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "checkpoint.pt", weights_only=True)


def stage(model: str, params: Path, faces: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "stages" / "train.py"), model, "--params", str(params),
                             "--faces", str(faces), "--out", str(out / "models"), "--checkpoints",
                             str(out / "checkpoints"), "--logs", str(out / "logs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
def test_kill_and_resume_gives_the_weights_of_an_uninterrupted_run(model, faces, tmp_path):
    params = params_file(tmp_path / "params.yaml")
    run(model, params, faces, tmp_path / "whole")
    whole = checkpoint(tmp_path / "whole")
    total = whole["step"]  # 2 epochs: 40 CycleGAN samples, 32 Recycle-GAN triplets

    killed = stage(model, params, faces, tmp_path / "parts")
    saved = tmp_path / "parts" / "checkpoints" / "checkpoint.pt"
    while not saved.exists() and killed.poll() is None:
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    step = checkpoint(tmp_path / "parts")["step"]
    assert 10 <= step < total and not (tmp_path / "parts" / "models").exists()

    resumed = stage(model, params, faces, tmp_path / "parts")
    _, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert f"resuming from {saved} at step {step}" in err

    parts = checkpoint(tmp_path / "parts")
    assert parts["step"] == total == {"cyclegan": 40, "recyclegan": 32}[model]
    for key, value in whole["networks"].items():
        assert torch.equal(value, parts["networks"][key]), key
    for name, state in whole["optimizers"].items():
        for i, moments in state["state"].items():
            assert torch.equal(moments["exp_avg_sq"], parts["optimizers"][name]["state"][i]["exp_avg_sq"])
    rows = np.loadtxt(tmp_path / "parts/logs/plots/metrics/train/loss_G_A.tsv", skiprows=1, usecols=0)
    assert rows.tolist() == sorted({*range(5, total + 1, 5), total})  # no step twice, none missing


def test_changed_params_or_inputs_start_over_and_unchanged_ones_resume(faces, tmp_path, capsys):
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(n_epochs=0.2, n_epochs_decay=0.2))
    run("cyclegan", params, faces, tmp_path)
    first = checkpoint(tmp_path)
    run("cyclegan", params, faces, tmp_path)
    assert "at step 8" in capsys.readouterr().err
    assert all(torch.equal(v, checkpoint(tmp_path)["networks"][k]) for k, v in first["networks"].items())

    changed = params_file(tmp_path / "params.yaml", cyclegan=dict(n_epochs=0.2, n_epochs_decay=0.2, lambda_cyc=5))
    run("cyclegan", changed, faces, tmp_path)
    err = capsys.readouterr().err
    assert "other settings (cyclegan.lambda_cyc 10.0 -> 5.0); starting over" in err
    assert checkpoint(tmp_path)["step"] == 8

    other = tmp_path / "faces"
    other.mkdir()
    for name in ("A_train.npy", "boxes.csv"):
        (other / name).write_bytes((faces / name).read_bytes())
    np.save(other / "B_train.npy", np.load(faces / "B_train.npy")[:-1])
    run("cyclegan", changed, other, tmp_path)
    assert "(B_train.npy changed); starting over" in capsys.readouterr().err


def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(faces, tmp_path):
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(lr=1e30, log_every=1, checkpoint_every=1))
    with pytest.raises(FacecycleError, match="NaN or infinite at step 2 .*last good checkpoint, step 1, stays in"):
        run("cyclegan", params, faces, tmp_path)
    state = checkpoint(tmp_path)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["networks"].values())
    assert not (tmp_path / "models").exists()
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(lr=1e30, log_every=1, checkpoint_every=100))
    with pytest.raises(FacecycleError, match="at step 2 .*no checkpoint was saved"):
        run("cyclegan", params, faces, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "checkpoints" / "checkpoint.pt").exists()


def test_crops_smaller_than_crop_size_name_the_param(faces, tmp_path):
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(crop_size=64))
    with pytest.raises(FacecycleError, match="cyclegan.crop_size 64 does not fit .*A_train.npy \\(40 px crops"):
        run("cyclegan", params, faces, tmp_path)


def test_stage_reports_a_missing_input_in_one_line(tmp_path):
    process = stage("recyclegan", params_file(tmp_path / "params.yaml"), tmp_path / "nowhere", tmp_path)
    _, err = process.communicate()
    assert process.returncode == 1
    assert err.strip().splitlines() == [f"train: error: {tmp_path / 'nowhere' / 'A_train.npy'}: not found "
                                        "(the crop_faces stage writes it)"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, samples):
    """CycleGAN, width 8, 150 steps on 60 real frames of the man and 30 of a woman; lr 1e-3 so that
    so short a run shows the trend clearly."""
    out = tmp_path_factory.mktemp("trained")
    faces = write_faces(out / "faces", {"A": [samples / "A/bbaf2n.mpg", samples / "A/lgil4n.mpg"],
                                        "B": [samples / "B/brbk7n.mpg"]}, size=40, frames=30)
    params = params_file(out / "params.yaml", cyclegan=dict(ngf=8, ndf=8, lr=1e-3, n_epochs=2.5, n_epochs_decay=0,
                                                            log_every=25, sample_every=75, checkpoint_every=75))
    run("cyclegan", params, faces, out)
    return out


def test_a_tiny_run_on_real_crops_lowers_the_cycle_loss(trained):
    for side in "AB":
        tsv = np.loadtxt(trained / f"logs/plots/metrics/train/loss_cycle_{side}.tsv", skiprows=1, usecols=(0, 1))
        assert tsv[:, 0].tolist() == [25, 50, 75, 100, 125, 150]
        assert tsv[-1, 1] < 0.6 * tsv[0, 1], tsv


def test_generators_are_exported_as_safetensors_that_rebuild_without_training_code(trained):
    weights = load_file(trained / "models/generators.safetensors")
    assert {k.split(".")[0] for k in weights} == {"G_A", "G_B"}
    architecture = json.loads((trained / "models/architecture.json").read_text())
    assert architecture == {"model": "cyclegan", "crop_size": 32, "load_size": 40,
                            "generator": {"input_nc": 3, "output_nc": 3, "ngf": 8, "n_blocks": 1,
                                          "upsample": "transpose"}}
    trained_nets = checkpoint(trained)["networks"]
    for name in ("G_A", "G_B"):
        g = ResnetGenerator(**architecture["generator"])
        g.load_state_dict({k.removeprefix(name + "."): v for k, v in weights.items() if k.startswith(name + ".")})
        assert all(torch.equal(v, trained_nets[f"{name}.{k}"]) for k, v in g.state_dict().items())


def test_dvclive_logs_losses_lr_and_sample_grids(trained):
    from PIL import Image

    summary = json.loads((trained / "logs/metrics.json").read_text())
    assert summary["step"] == 150 and set(summary["train"]) == {
        "loss_G_A", "loss_G_B", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B", "loss_D_A", "loss_D_B",
        "lr"}
    grids = sorted(p.name for p in (trained / "logs/plots/images/samples").iterdir())
    assert grids == ["0000075.png", "0000150.png"]
    grid = np.asarray(Image.open(trained / "logs/plots/images/samples.png"))
    assert grid.shape == (SAMPLES * 32, 6 * 32 + 4, 3)
    assert not (trained / "logs/dvc.yaml").exists()  # dvc.yaml declares the logs; dvclive must not write one
