"""The training loop on real GRID face crops: exact resume after a kill, also with changed cosmetic
params, fingerprints, the learning-rate schedule, divergence, learning, exported generators and
dvclive logs. The tiny networks of conftest.GROUPS on 32 px crops keep it fast."""
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers.processes import ENV, kill_once_saved
from helpers.real_crops import write_faces
from helpers.repo import GROUPS, REPO, over_shipped, train_into
from safetensors.torch import load_file

from pipeline.common.errors import FacecycleError
from pipeline.common.params import load_group
from pipeline.models.nets import ResnetGenerator
from pipeline.train.loop import SAMPLES, export, load_domains, lr_factor, tile_grid, train

pytestmark = pytest.mark.usefixtures("one_thread")


def params_file(path: Path, lambda_cyc: float = 10.0, **changes) -> Path:
    """A params.yaml with `lambda_cyc` and the tiny groups; `changes` as group=dict(key=value)."""
    groups = {name: dict(values, **changes.get(name, {})) for name, values in GROUPS.items()}
    path.write_text(yaml.safe_dump(over_shipped({"lambda_cyc": lambda_cyc, **groups})))
    return path


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "checkpoint.pt", weights_only=True)


def logged(out: Path, metric: str) -> np.ndarray:
    """(step, value) rows of a dvclive train metric."""
    return np.loadtxt(out / f"logs/plots/metrics/train/{metric}.tsv", skiprows=1, usecols=(0, 1), ndmin=2)


def stage_command(model: str, params: Path, faces: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "stages" / "train.py"), model, "--params", str(params), "--faces", str(faces),
            "--out", str(out / "models"), "--checkpoints", str(out / "checkpoints"), "--logs", str(out / "logs")]


def run_stage(model: str, params: Path, faces: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(stage_command(model, params, faces, out), env=ENV, capture_output=True, text=True)


def samples_per_epoch(model: str, faces: Path) -> int:
    """max(|A|, |B|) from boxes.csv: every crop for CycleGAN; for Recycle-GAN every frame triplet,
    two fewer than frames per clip (the tiny crops have no cut and no missing face)."""
    boxes = pd.read_csv(faces / "boxes.csv")
    per_domain = boxes.groupby("domain")["video"].agg(
        lambda videos: len(videos) - (2 * videos.nunique() if model == "recyclegan" else 0))
    return int(per_domain.max())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_faces) -> dict[str, Path]:
    """Both models trained on the tiny groups in one go: what an interrupted run must end with."""
    root = tmp_path_factory.mktemp("uninterrupted")
    params = params_file(root / "params.yaml")
    for model in GROUPS:
        train_into(model, params, tiny_faces, root / model)
    return {model: root / model for model in GROUPS}


def assert_same_training_state(got: dict, expected: dict) -> None:
    """Same step, weights and Adam moments."""
    assert got["step"] == expected["step"]
    for key, value in expected["networks"].items():
        assert torch.equal(value, got["networks"][key]), key
    for name, state in expected["optimizers"].items():
        for i, moments in state["state"].items():
            assert torch.equal(moments["exp_avg_sq"], got["optimizers"][name]["state"][i]["exp_avg_sq"])


def kill_after_first_checkpoint(model: str, params: Path, faces: Path, out: Path) -> int:
    """Run the train stage, SIGKILL it once it has saved a checkpoint; return that checkpoint's step."""
    kill_once_saved(out / "checkpoints" / "checkpoint.pt", *stage_command(model, params, faces, out))
    assert not (out / "models").exists()
    return checkpoint(out)["step"]


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
@pytest.mark.slow
def test_kill_and_resume_gives_the_weights_of_an_uninterrupted_run(model, tiny_faces, uninterrupted, tmp_path):
    whole = checkpoint(uninterrupted[model])
    total = whole["step"]
    assert total == 2 * samples_per_epoch(model, tiny_faces)  # 2 epochs of batch 1

    params = params_file(tmp_path / "params.yaml")
    step = kill_after_first_checkpoint(model, params, tiny_faces, tmp_path)
    assert 10 <= step < total

    resumed = run_stage(model, params, tiny_faces, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {tmp_path / 'checkpoints' / 'checkpoint.pt'} at step {step}" in resumed.stderr
    assert_same_training_state(checkpoint(tmp_path), whole)
    rows = logged(tmp_path, "loss_G_A")[:, 0]
    assert rows.tolist() == sorted({*range(5, total + 1, 5), total})  # no step twice, none missing


@pytest.mark.parametrize("model", ["cyclegan", "recyclegan"])
def test_crops_over_the_memory_budget_stream_from_the_host_to_the_same_weights(model, tiny_faces, uninterrupted,
                                                                                 tmp_path, capsys):
    """Crops of more bytes than the budget stay memory-mapped on the host and each batch is gathered
    there and copied to the training device: the same pixels, so the losses and weights of a run
    with the crops on the device, bit for bit."""
    params = load_group(model, params_file(tmp_path / "params.yaml"))
    nbytes = sum(np.load(tiny_faces / f"{d}_train.npy", mmap_mode="r").nbytes for d in "AB")
    frames = 3 if model == "recyclegan" else 1
    cpu = torch.device("cpu")
    fits, _ = load_domains(model, params, tiny_faces, frames, cpu, budget=nbytes)
    assert fits["A"].device is None and "budget" not in capsys.readouterr().err
    streamed, _ = load_domains(model, params, tiny_faces, frames, cpu, budget=nbytes - 1)
    assert streamed["A"].device == streamed["B"].device == cpu
    assert "exceed the cpu memory budget" in capsys.readouterr().err

    train(model, params, tiny_faces, tmp_path / "models", tmp_path / "checkpoints", tmp_path / "logs",
          crop_budget=nbytes // 10)
    assert "exceed the cpu memory budget" in capsys.readouterr().err
    assert_same_training_state(checkpoint(tmp_path), checkpoint(uninterrupted[model]))
    for loss in ("loss_G_A", "loss_D_B"):
        np.testing.assert_array_equal(logged(tmp_path, loss), logged(uninterrupted[model], loss))


def test_a_killed_run_resumes_when_only_cosmetic_params_changed(tiny_faces, uninterrupted, tmp_path, capsys):
    """log_every, sample_every and checkpoint_every do not change the weights, so a run resumes across
    them and ends with the uninterrupted weights, logging at the new cadence from where it resumed.
    (`compile`, also cosmetic, is not switched here: compiling takes minutes on the CPU.)"""
    params = params_file(tmp_path / "params.yaml")
    step = kill_after_first_checkpoint("cyclegan", params, tiny_faces, tmp_path)
    total = checkpoint(uninterrupted["cyclegan"])["step"]
    assert 10 <= step < total

    cosmetic = params_file(tmp_path / "params.yaml", cyclegan=dict(log_every=4, sample_every=7, checkpoint_every=15))
    train_into("cyclegan", cosmetic, tiny_faces, tmp_path)
    err = capsys.readouterr().err
    assert f"resuming from {tmp_path / 'checkpoints' / 'checkpoint.pt'} at step {step}" in err
    assert "starting over" not in err
    assert_same_training_state(checkpoint(tmp_path), checkpoint(uninterrupted["cyclegan"]))
    rows = logged(tmp_path, "loss_G_A")[:, 0]
    after = [s for s in range(step + 1, total + 1) if s % 4 == 0 or s == total]
    assert rows.tolist() == [*range(5, step + 1, 5), *after]  # the killed run's rows up to its checkpoint, then new


def test_changed_params_or_inputs_start_over_and_unchanged_ones_resume(tiny_faces, tmp_path, capsys):
    short = dict(n_epochs=0.2, n_epochs_decay=0.2)
    steps = math.ceil(0.4 * samples_per_epoch("cyclegan", tiny_faces))
    params = params_file(tmp_path / "params.yaml", cyclegan=short)
    train_into("cyclegan", params, tiny_faces, tmp_path)
    first = checkpoint(tmp_path)
    train_into("cyclegan", params, tiny_faces, tmp_path)
    assert f"at step {steps}" in capsys.readouterr().err
    assert all(torch.equal(v, checkpoint(tmp_path)["networks"][k]) for k, v in first["networks"].items())

    changed = params_file(tmp_path / "params.yaml", lambda_cyc=5, cyclegan=short)
    train_into("cyclegan", changed, tiny_faces, tmp_path)
    err = capsys.readouterr().err
    assert "other settings (lambda_cyc 10.0 -> 5.0); starting over" in err
    assert checkpoint(tmp_path)["step"] == steps

    other = tmp_path / "faces"
    other.mkdir()
    for name in ("A_train.npy", "boxes.csv"):
        (other / name).write_bytes((tiny_faces / name).read_bytes())
    np.save(other / "B_train.npy", np.load(tiny_faces / "B_train.npy")[:-1])
    train_into("cyclegan", changed, other, tmp_path)
    assert "(B_train.npy changed); starting over" in capsys.readouterr().err


@pytest.mark.slow
def test_bf16_training_says_so_in_its_log_and_repeats_bit_for_bit(tiny_faces, uninterrupted, tmp_path):
    """precision bf16 (forced, so that it runs on any CPU): the stage says so, logs/params.yaml records
    it, a rerun on the same machine ends with the same weights, and they are not the fp32 run's."""
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(precision="bf16"))
    runs = [run_stage("cyclegan", params, tiny_faces, tmp_path / f"run{i}") for i in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    assert "cyclegan: 40 steps of 1 on cpu in bf16 (precision bf16)" in runs[0].stderr
    assert yaml.safe_load((tmp_path / "run0/logs/params.yaml").read_text()) == {"device": "cpu", "precision": "bf16"}
    first, second = (load_file(tmp_path / f"run{i}/models/generators.safetensors") for i in range(2))
    assert all(torch.equal(first[k], second[k]) for k in first)
    fp32 = load_file(uninterrupted["cyclegan"] / "models/generators.safetensors")
    assert not all(torch.equal(first[k], fp32[k]) for k in first)


def test_lr_factor_is_one_for_n_epochs_then_falls_linearly_to_zero():
    """20 steps an epoch, 3 constant epochs then 2 of decay: steps 0-60 at 1, 0 from step 100."""
    assert [lr_factor(step, 20, 3, 2) for step in (0, 59, 60, 70, 80, 99, 100, 140)] == \
        pytest.approx([1, 1, 1, 0.75, 0.5, 0.025, 0, 0])
    assert lr_factor(27, 7.5, 3, 2) == pytest.approx(0.7)  # a fractional epoch length: step 27 is epoch 3.6
    assert lr_factor(10 ** 6, 20, 3, 0) == 1  # no decay epochs: constant to the end


def test_logged_lr_follows_the_schedule_on_every_optimizer(tiny_faces, uninterrupted):
    """The tiny groups train 1 constant epoch, then 1 of linear decay to 0 (batch 1: an epoch is
    max(|A|, |B|) steps); every log step records the rate of that step."""
    out = uninterrupted["cyclegan"]
    params = load_group("cyclegan", out.parent / "params.yaml")
    epoch = samples_per_epoch("cyclegan", tiny_faces)  # in steps of batch 1
    steps, lr = logged(out, "lr").T
    assert steps.tolist() == list(range(5, 2 * epoch + 1, 5))
    decay = 1 - (steps / epoch - params.n_epochs) / params.n_epochs_decay
    assert lr == pytest.approx(params.lr * np.clip(decay, 0, 1), rel=1e-6)
    for name, state in checkpoint(out)["optimizers"].items():  # the generators' and discriminators' Adam alike
        assert [group["lr"] for group in state["param_groups"]] == [0] * len(state["param_groups"]), name


def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_faces, tmp_path):
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(lr=1e30, log_every=1, checkpoint_every=1))
    with pytest.raises(FacecycleError, match="NaN or infinite at step 2 .*last good checkpoint, step 1, stays in"):
        train_into("cyclegan", params, tiny_faces, tmp_path)
    state = checkpoint(tmp_path)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["networks"].values())
    assert not (tmp_path / "models").exists()
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(lr=1e30, log_every=1, checkpoint_every=100))
    with pytest.raises(FacecycleError, match="at step 2 .*no checkpoint was saved"):
        train_into("cyclegan", params, tiny_faces, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "checkpoints" / "checkpoint.pt").exists()


def test_crops_smaller_than_crop_size_name_the_param(tiny_faces, tmp_path):
    params = params_file(tmp_path / "params.yaml", cyclegan=dict(crop_size=64))
    with pytest.raises(FacecycleError, match="cyclegan.crop_size 64 does not fit .*A_train.npy \\(40 px crops"):
        train_into("cyclegan", params, tiny_faces, tmp_path)


def test_stage_reports_a_missing_input_in_one_line(tmp_path):
    done = run_stage("recyclegan", params_file(tmp_path / "params.yaml"), tmp_path / "nowhere", tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"train: error: {tmp_path / 'nowhere' / 'A_train.npy'}: not found "
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
    train_into("cyclegan", params, faces, out)
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


def test_sample_grid_layout_is_torchvisions():
    from torchvision.utils import make_grid
    tiles = torch.rand(3, 6, 3, 16, 20) * 2 - 1  # rows of six tiles, not square
    assert torch.equal(tile_grid(tiles, pad=2, value=1.0), make_grid(tiles.flatten(0, 1), nrow=6, padding=2, pad_value=1.0))


def test_dvclive_logs_losses_lr_and_sample_grids(trained):
    from PIL import Image

    summary = json.loads((trained / "logs/metrics.json").read_text())
    assert summary["step"] == 150 and set(summary["train"]) == {
        "loss_G_A", "loss_G_B", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B", "loss_D_A", "loss_D_B",
        "lr"}
    grids = sorted(p.name for p in (trained / "logs/plots/images/samples").iterdir())
    assert grids == ["0000075.png", "0000150.png"]
    grid = np.asarray(Image.open(trained / "logs/plots/images/samples.png"))
    assert grid.shape == (SAMPLES * 34 + 2, 6 * 34 + 2, 3)  # 32 px tiles on 2 px white lines
    assert (grid[:2] == 255).all() and (grid[:, 34:36] == 255).all()
    assert np.asarray(Image.open(trained / "logs/plots/images/losses.png")).shape == (380, 720, 3)  # tests/test_charts.py
    assert not (trained / "logs/dvc.yaml").exists()  # dvc.yaml declares the logs; dvclive must not write one


def test_generators_exported_in_bf16_translate_as_the_fp32_ones_under_bf16_autocast(tmp_path):
    """`export: bf16` halves models/<model> and changes no translation where infer runs in bf16
    autocast (CUDA): autocast rounds each convolution's weights to bf16 anyway."""
    from pipeline.common.device import StepOptions
    from pipeline.models import model_class
    from pipeline.translate.infer import load_generators, translate_batches

    torch.manual_seed(0)
    params = load_group("cyclegan", params_file(tmp_path / "params.yaml"))
    model = model_class("cyclegan")(params, torch.device("cpu"))
    for weight in model.networks.parameters():  # away from init's round numbers: every weight rounds
        torch.nn.init.normal_(weight, 0, 0.02)
    crops = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    translations, sizes = {}, {}
    for dtype in ("fp32", "bf16"):
        out = tmp_path / dtype
        export(out, "cyclegan", model, dataclasses.replace(params, export=dtype), load_size=40)
        weights = load_file(out / "generators.safetensors")
        assert {str(w.dtype) for w in weights.values()} == {f"torch.{'float32' if dtype == 'fp32' else 'bfloat16'}"}
        sizes[dtype] = (out / "generators.safetensors").stat().st_size
        generators, _ = load_generators(out)
        translations[dtype] = next(translate_batches(generators["G_A"], generators["G_B"], [crops], params.crop_size,
                                                     torch.device("cpu"), StepOptions(bf16=True)))
    assert sizes["bf16"] < 0.55 * sizes["fp32"]
    for fp32, bf16 in zip(translations["fp32"], translations["bf16"]):
        np.testing.assert_array_equal(fp32, bf16)
