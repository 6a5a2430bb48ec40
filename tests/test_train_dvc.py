"""The two train stages of dvc.yaml in a temporary git + DVC repo, on real GRID crops: `dvc repro`,
metrics and plots for `dvc metrics/plots/exp show`, `dvc exp run -S cyclegan.lambda_cyc=5`
rerunning CycleGAN only, and a checkpoint (git-ignored, not a DVC output) that a forced rerun resumes from."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.real_crops import write_faces
from tests.test_train import GROUPS

REPO = Path(__file__).resolve().parents[1]
STAGES = ("train_cyclegan", "train_recyclegan")


def sh(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def repo(tmp_path, samples):
    """A git + DVC repo with the train stages of dvc.yaml, their code, tiny params and real crops."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    mine = {name: stages[name] for name in STAGES}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": mine}, sort_keys=False))
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())  # every key, so `-S group.key=` finds it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({g: dict(shipped[g], **GROUPS[g]) for g in GROUPS}))
    for dep in {d for stage in mine.values() for d in stage["deps"] if not d.startswith("data/")}:
        (tmp_path / dep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / dep, tmp_path / dep)
    write_faces(tmp_path / "data" / "faces", {"A": [samples / "A/bbaf2n.mpg", samples / "A/bbiz1s.mpg"],
                                              "B": [samples / "B/brbk7n.mpg"]}, size=40, frames=10)
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "dvc", "config", "core.analytics", "false")
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_train_stages_run_log_and_resume_under_dvc(repo):
    sh(repo, "dvc", "repro", *STAGES)
    for model in ("cyclegan", "recyclegan"):
        assert (repo / "models" / model / "generators.safetensors").exists()
    metrics = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    shown = metrics[""]["data"]
    assert shown["logs/cyclegan/metrics.json"]["data"]["step"] == 40
    assert "loss_recycle_A" in shown["logs/recyclegan/metrics.json"]["data"]["train"]
    plots = json.loads(sh(repo, "dvc", "plots", "show", "--json").stdout)["data"]
    assert "logs/cyclegan/plots/metrics/train/loss_cycle_A.tsv" in plots
    assert "logs/recyclegan/plots/images/samples.png" in plots
    assert "checkpoints/" in (repo / ".gitignore").read_text()

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "trained")
    run = sh(repo, "dvc", "exp", "run", "-S", "cyclegan.lambda_cyc=5")
    assert "Running stage 'train_cyclegan'" in run.stdout and "Running stage 'train_recyclegan'" not in run.stdout
    assert "other settings (cyclegan.lambda_cyc 10.0 -> 5.0); starting over" in run.stderr
    experiments = json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout)
    lambdas = [exp["data"]["params"]["params.yaml"]["data"]["cyclegan"]["lambda_cyc"]
               for rev in experiments for branch in rev.get("experiments") or [] for exp in branch["revs"]]
    assert lambdas == [5]

    forced = sh(repo, "dvc", "repro", "--force", "--single-item", "train_cyclegan")
    assert "resuming from checkpoints/cyclegan/checkpoint.pt at step 40" in forced.stderr  # DVC leaves the undeclared checkpoint alone
