"""dvc.yaml as a team uses it, with real DVC commands in temporary git repos.

The whole pipeline runs once on about a second of three real GRID clips (32 px crops, the tiny
nets of conftest.GROUPS) and is pushed to a folder remote. A teammate's clone pulls the models
and runs only inference; a queued sweep reruns CycleGAN and what follows it, nothing else. A
training stage killed with SIGKILL resumes under `dvc repro` and `dvc exp run` and ends with the
weights of an uninterrupted run.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import GROUPS, REPO, copy_stages
from processes import commit, kill_once_saved, sh

CLIPS = [("bbaf2n", "A", "train", 1.0), ("sbat6n", "A", "test", 1.0), ("brbk7n", "B", None, 1.2)]  # name, domain, split, end
MODELS = ("cyclegan", "recyclegan")


def ran(output: str) -> list[str]:
    """The stages a dvc command ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A repo that ran all of dvc.yaml on tiny settings and pushed to its default remote, a local folder."""
    root = tmp_path_factory.mktemp("team")
    lead, remote = root / "lead", root / "remote"
    lead.mkdir()
    stages = copy_stages(lead)
    shutil.copy(REPO / ".gitignore", lead / ".gitignore")
    videos = []
    for name, domain, split, end in CLIPS:
        clip = Path("data/samples") / domain / f"{name}.mpg"
        (lead / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / clip, lead / clip)
        videos.append(dict(name=name, domain=domain, path=str(clip), start=0, end=end, **({"split": split} if split else {})))
    params = yaml.safe_load((REPO / "params.yaml").read_text())  # every key, so `-S group.key=` finds it
    params["data"].update(videos=videos, load_size=32)
    for group, values in GROUPS.items():
        params[group].update(values)
    params["infer"]["device"] = "cpu"
    params["merge"].update(crf=30, sheet_frames=1)
    params["metrics"].update(face_rect="crop", face_size=150, identity_every=1000, centroid_frames=2)
    (lead / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(lead, "git", "init", "-q")
    sh(lead, "dvc", "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", lead / ".dvc" / "config")
    sh(lead, "dvc", "remote", "add", "-d", "team", str(remote))  # README: the one command a team runs
    commit(lead, "pipeline")
    assert sorted(ran(sh(lead, "dvc", "repro").stdout)) == sorted(stages)
    commit(lead, "trained")
    sh(lead, "dvc", "push")
    return lead


def clone(team: Path, to: Path) -> Path:
    sh(team.parent, "git", "clone", "-q", str(team), str(to))
    return to


def test_teammate_pulls_the_models_and_runs_only_inference(team, tmp_path):
    mate = clone(team, tmp_path / "mate")
    trained = [f"train_{m}" for m in MODELS]
    sh(mate, "dvc", "pull", "--with-deps", *trained)
    assert not (mate / "data" / "translated" / "cyclegan").exists()

    stages = ran(sh(mate, "dvc", "repro").stdout)  # a plain repro: the models are there, nothing retrains
    assert stages[:2] == ["infer", "merge_video"] and set(stages) <= {"infer", "merge_video", "metrics", "results_page"}
    assert not (mate / "checkpoints").exists() and not (mate / ".dvc" / "tmp" / "exps").exists()
    for model in MODELS:
        weights = Path("models") / model / "generators.safetensors"
        assert (mate / weights).read_bytes() == (team / weights).read_bytes()
        assert (mate / "results" / model / "sbat6n.mp4").stat().st_size > 0
    assert (mate / "results" / "compare" / "brbk7n.mp4").exists()
    assert "Data and pipelines are up to date." in sh(mate, "dvc", "repro").stdout


def exp_rows(repo: Path) -> tuple[dict, list[dict]]:
    """`dvc exp show --json` as (baseline, experiments), each {"params": ..., "metrics": {file: values}}."""
    def row(data: dict) -> dict:
        return {"params": data["params"]["params.yaml"]["data"],
                "metrics": {path: m["data"] for path, m in data["metrics"].items()}}
    (baseline,) = [rev for rev in json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout) if rev["rev"] != "workspace"]
    return row(baseline["data"]), [row(exp["data"]) for branch in baseline["experiments"] for exp in branch["revs"]]


def test_queued_sweep_reruns_cyclegan_and_what_follows_only(team, tmp_path):
    mate = clone(team, tmp_path / "mate")
    sh(mate, "dvc", "pull")
    assert "Data and pipelines are up to date." in sh(mate, "dvc", "repro").stdout
    queued = sh(mate, "dvc", "exp", "run", "--queue", "-S", "cyclegan.lambda_cyc=5,20")
    assert queued.stdout.count("Queued experiment") == 2
    run = sh(mate, "dvc", "exp", "run", "--run-all")
    assert ran(run.stdout) == ["train_cyclegan", "infer", "merge_video", "metrics", "results_page"] * 2

    baseline, experiments = exp_rows(mate)
    assert sorted(exp["params"]["cyclegan"]["lambda_cyc"] for exp in experiments) == [5, 20]
    base = baseline["metrics"]["metrics/translation.json"]
    for exp in experiments:
        scores = exp["metrics"]["metrics/translation.json"]
        assert scores["recyclegan"] == base["recyclegan"]  # not retrained: same weights, same scores
        assert scores["cyclegan"]["A2B"]["warping_error"] != base["cyclegan"]["A2B"]["warping_error"]


def test_turning_the_stabiliser_off_reruns_inference_and_what_follows_only(team, tmp_path):
    """infer.temporal is an infer param: switching it reruns infer and what reads its output (merge_video,
    metrics, the results page), and the per-frame rows stay as they were (the option never changes
    the translation it starts from)."""
    mate = clone(team, tmp_path / "mate")
    sh(mate, "dvc", "pull")
    before = json.loads((mate / "metrics" / "translation.json").read_text())
    assert set(before) == {"input", *MODELS, *(f"{m}+flow" for m in MODELS)}  # params.yaml ships temporal: flow
    run = sh(mate, "dvc", "exp", "run", "-S", "infer.temporal=none")
    assert ran(run.stdout) == ["infer", "merge_video", "metrics", "results_page"]
    after = json.loads((mate / "metrics" / "translation.json").read_text())
    assert set(after) == {"input", *MODELS}
    for model, ways in after.items():
        for way, figures in ways.items():
            assert figures == {key: before[model][way][key] for key in figures}
            assert set(before[model][way]) - set(figures) <= {"raw_psnr"}  # a column of the stabilised rows only
    assert not list((mate / "data" / "translated" / "cyclegan").glob("*_raw.npy"))


def tensors(repo: Path) -> dict[str, torch.Tensor]:
    return load_file(repo / "models" / "cyclegan" / "generators.safetensors")


def kill_after_first_checkpoint(repo: Path, *command: str) -> None:
    """Run a dvc command and kill it with the stage it spawned once the stage has saved its first checkpoint."""
    saved = repo / "checkpoints" / "cyclegan" / "checkpoint.pt"
    shutil.rmtree(saved.parent, ignore_errors=True)
    kill_once_saved(saved, *command, cwd=repo)


def resumed_at(run: subprocess.CompletedProcess) -> int:
    """The step a stage resumed from: 40 steps in all, a checkpoint every 10."""
    found = re.search(r"resuming from checkpoints/cyclegan/checkpoint.pt at step (\d+)", run.stderr)
    assert found, [line for line in run.stderr.splitlines() if "step/s" not in line]
    step = int(found[1])
    assert 10 <= step < 40 and step % 10 == 0
    return step


def test_killed_training_resumes_under_repro_and_exp_run_to_the_uninterrupted_weights(train_repo):
    kill_after_first_checkpoint(train_repo, "dvc", "exp", "run", "train_cyclegan")
    resumed_at(sh(train_repo, "dvc", "exp", "run", "train_cyclegan"))
    after_exp = tensors(train_repo)

    kill_after_first_checkpoint(train_repo, "dvc", "repro", "--force", "train_cyclegan")
    assert not (train_repo / "models" / "cyclegan").exists()
    stale = json.loads((train_repo / ".dvc" / "tmp" / "rwlock").read_text())["write"]
    assert any(info["cmd"].endswith("dvc repro --force train_cyclegan") for info in stale.values())  # a dead pid
    resumed = sh(train_repo, "dvc", "repro", "train_cyclegan")
    assert "had been killed. Auto removed it from the lock file." in resumed.stderr  # the stale lock does not block
    resumed_at(resumed)
    after_repro = tensors(train_repo)

    shutil.rmtree(train_repo / "checkpoints" / "cyclegan")
    whole = sh(train_repo, "dvc", "repro", "--force", "train_cyclegan")
    assert "resuming" not in whole.stderr
    for key, value in tensors(train_repo).items():
        assert torch.equal(value, after_exp[key]) and torch.equal(value, after_repro[key]), key
