"""The two train stages of dvc.yaml in a temporary git + DVC repo, on real GRID crops: `dvc repro`,
metrics and plots for `dvc metrics/plots/exp show`, `dvc exp run -S cyclegan.lambda_identity=0.25`
rerunning CycleGAN only, and a checkpoint (git-ignored, not a DVC output) that a forced rerun resumes from."""
import json

from processes import commit, sh

STAGES = ("train_cyclegan", "train_recyclegan")


def test_train_stages_run_log_and_resume_under_dvc(train_repo):
    sh(train_repo, "dvc", "repro", *STAGES)
    for model in ("cyclegan", "recyclegan"):
        assert (train_repo / "models" / model / "generators.safetensors").exists()
    metrics = json.loads(sh(train_repo, "dvc", "metrics", "show", "--json").stdout)
    shown = metrics[""]["data"]
    assert shown["logs/cyclegan/metrics.json"]["data"]["step"] == 40
    assert "loss_recycle_A" in shown["logs/recyclegan/metrics.json"]["data"]["train"]
    plots = json.loads(sh(train_repo, "dvc", "plots", "show", "--json").stdout)["data"]
    assert "logs/cyclegan/plots/metrics/train/loss_cycle_A.tsv" in plots
    assert "logs/recyclegan/plots/images/samples.png" in plots
    assert "logs/cyclegan/plots/images/losses.png" in plots

    commit(train_repo, "trained")
    for model in ("cyclegan", "recyclegan"):
        assert (train_repo / "checkpoints" / model / "checkpoint.pt").exists()
        sh(train_repo, "git", "check-ignore", "-q", f"checkpoints/{model}/checkpoint.pt")
    assert sh(train_repo, "git", "ls-files", "checkpoints").stdout == ""  # `git add -A` left the checkpoints out
    run = sh(train_repo, "dvc", "exp", "run", "-S", "cyclegan.lambda_identity=0.25")
    assert "Running stage 'train_cyclegan'" in run.stdout and "Running stage 'train_recyclegan'" not in run.stdout
    assert "other settings (cyclegan.lambda_identity 0.5 -> 0.25); starting over" in run.stderr
    experiments = json.loads(sh(train_repo, "dvc", "exp", "show", "--json").stdout)
    weights = [exp["data"]["params"]["params.yaml"]["data"]["cyclegan"]["lambda_identity"]
               for rev in experiments for branch in rev.get("experiments") or [] for exp in branch["revs"]]
    assert weights == [0.25]

    forced = sh(train_repo, "dvc", "repro", "--force", "--single-item", "train_cyclegan")
    # DVC leaves the undeclared checkpoint alone:
    assert "resuming from checkpoints/cyclegan/checkpoint.pt at step 40" in forced.stderr
