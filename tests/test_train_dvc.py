"""The two train stages of dvc.yaml in a temporary git + DVC repo, on real GRID crops: `dvc repro`,
dvclive's logs (image plots for `dvc plots show`; the last losses in git, not DVC metrics, so
`dvc exp show` leads with metrics/summary.json), `dvc exp run -S demo.cyclegan.lambda_identity=0.25`
rerunning CycleGAN only, and a checkpoint (git-ignored, not a DVC output) that a forced rerun resumes from."""
import json

import pytest
from helpers.processes import commit, sh

from pipeline.models import MODELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGES = ("train_cyclegan", "train_recyclegan")


def test_train_stages_run_log_and_resume_under_dvc(train_repo):
    sh(train_repo, "dvc", "repro", *STAGES)
    for model in ("cyclegan", "recyclegan"):
        assert (train_repo / "models" / model / "generators.safetensors").exists()
    assert json.loads((train_repo / "logs/cyclegan/metrics.json").read_text())["step"] == 40
    assert "loss_recycle_A" in json.loads((train_repo / "logs/recyclegan/metrics.json").read_text())["train"]
    assert json.loads(sh(train_repo, "dvc", "metrics", "show", "--json").stdout) == {"": {"data": {}}}
    assert (train_repo / "logs/cyclegan/plots/metrics/train/loss_cycle_A.tsv").is_file()
    plots = json.loads(sh(train_repo, "dvc", "plots", "show", "--json").stdout)["data"]
    assert {f"logs/{m}/plots/images/{name}" for m in MODELS for name in ("losses.png", "samples.png")} <= set(plots)
    assert all(path.startswith("logs/") and path.endswith(".png") for path in plots), sorted(plots)  # images only

    commit(train_repo, "trained")
    for model in ("cyclegan", "recyclegan"):
        assert (train_repo / "checkpoints" / model / "checkpoint.pt").exists()
        sh(train_repo, "git", "check-ignore", "-q", f"checkpoints/{model}/checkpoint.pt")
    assert sh(train_repo, "git", "ls-files", "checkpoints").stdout == ""  # `git add -A` left the checkpoints out
    run = sh(train_repo, "dvc", "exp", "run", "-S", "demo.cyclegan.lambda_identity=0.25")
    assert "Running stage 'train_cyclegan'" in run.stdout and "Running stage 'train_recyclegan'" not in run.stdout
    assert "other settings (cyclegan.lambda_identity 0.5 -> 0.25); starting over" in run.stderr
    experiments = json.loads(sh(train_repo, "dvc", "exp", "show", "--json").stdout)
    weights = [exp["data"]["params"]["params.yaml"]["data"]["demo"]["cyclegan"]["lambda_identity"]
               for rev in experiments for branch in rev.get("experiments") or [] for exp in branch["revs"]]
    assert weights == [0.25]

    forced = sh(train_repo, "dvc", "repro", "--force", "--single-item", "train_cyclegan")
    # DVC leaves the undeclared checkpoint alone:
    assert "resuming from checkpoints/cyclegan/checkpoint.pt at step 40" in forced.stderr
