"""dvc.yaml as a team uses it, with real DVC commands in temporary git repos (docs/team.md).

The whole pipeline runs once on about a second of three real GRID clips (32 px crops, the tiny
nets of conftest.GROUPS) and is pushed to a folder remote. A teammate's clone pulls the models
and runs only inference; forced reruns of every stage write the same bytes; `dvc exp run -S
lambda_cyc=5` retrains both models and what follows them, and `dvc exp show --only-changed` leads
with the summary figures; a queued sweep of a CycleGAN param reruns CycleGAN and what follows it,
nothing else, and one of its experiments travels to a fresh clone by `dvc exp push` / `dvc exp
pull` (git remote and DVC remote) and applies without retraining; `dvc plots diff` of two
experiments shows their contact sheets with no script; an own video in videos/ travels through the
remote when added, replaced and removed, and retrains nothing as a test video; the same team path
runs over an SSH remote (sshd on loopback). A training stage killed with SIGKILL resumes under
`dvc repro` and `dvc exp run` and ends with the weights of an uninterrupted run.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ssh_server
from helpers.browser import CHROMIUM, loaded
from helpers.processes import commit, kill_once_saved, sh
from helpers.repo import GROUPS, REPO, copy_stages, over_shipped
from safetensors.torch import load_file

from pipeline.models import MODELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIPS = [("bbaf2n", "A", "train", 1.0), ("sbat6n", "A", "test", 1.0), ("brbk7n", "B", None, 1.2)]  # name, domain, split, end
# the .gitignore files a clone of the project has, DVC's own ones included
SHIPPED_IGNORES = (".gitignore", "data/.gitignore", "data/translated/.gitignore", "results/.gitignore",
                   "models/.gitignore")
COMMIT_STEP = ("git", "add", "dvc.lock", "metrics", "logs", "results")  # docs/team.md: what `dvc repro` leaves for git
EXP_SHOW = ("dvc", "exp", "show", "--only-changed", "--md")  # docs/team.md's table, as markdown: every header whole
FIGURES = ("warping_error", "identity_share", "merged_identity_share")  # metrics/summary.json per model (the DVC metrics)
UP_TO_DATE = "Data and pipelines are up to date."
NO_TRAINING = ["fetch", "extract_frames", "crop_faces", "infer", "merge_video", "metrics", "results_page"]


def ran(output: str) -> list[str]:
    """The stages a dvc command ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def share(repo: Path, message: str, *paths: str) -> None:
    """The docs' commit step after `dvc repro` (with `paths` besides), then `dvc push`; nothing is left for git."""
    sh(repo, *COMMIT_STEP, *paths)
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
    assert sh(repo, "git", "status", "--porcelain").stdout == ""
    sh(repo, "dvc", "push")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A repo that ran all of dvc.yaml on tiny settings and pushed to its default remote, a local folder."""
    root = tmp_path_factory.mktemp("team")
    lead, remote = root / "lead", root / "remote"
    lead.mkdir()
    stages = copy_stages(lead)
    for ignore in SHIPPED_IGNORES:
        (lead / ignore).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / ignore, lead / ignore)
    videos = []
    for name, domain, split, end in CLIPS:
        clip = Path("data/samples") / domain / f"{name}.mpg"
        (lead / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / clip, lead / clip)
        videos.append(dict(name=name, domain=domain, path=str(clip), start=0, end=end,
                           **({"split": split} if split else {})))
    (lead / "videos.yaml").write_text(yaml.safe_dump({"videos": videos}, default_flow_style=None, sort_keys=False))
    # every key, so `-S key=` finds it
    params = over_shipped({"data": {"load_size": 32}, **GROUPS, "infer": {"device": "cpu"},
                           "merge": {"crf": 30, "sheet_frames": 1},
                           "metrics": {"face_rect": "crop", "face_size": 150, "identity_every": 1000, "centroid_frames": 2}})
    (lead / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(lead, "git", "init", "-q")
    sh(lead, "dvc", "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", lead / ".dvc" / "config")
    sh(lead, "dvc", "remote", "add", "-d", "team", str(remote))  # docs/team.md: the one command a team runs
    commit(lead, "pipeline")
    assert sorted(ran(sh(lead, "dvc", "repro").stdout)) == sorted(stages)
    share(lead, "trained")
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
    assert UP_TO_DATE in sh(mate, "dvc", "repro").stdout
    assert sh(mate, "git", "status", "--porcelain").stdout == "", sh(mate, "git", "diff").stdout  # the lead's bytes


def test_every_stage_rerun_on_the_same_inputs_writes_the_same_bytes(team, tmp_path):
    """A teammate reruns everything, training included (no checkpoint in a clone): dvc.lock, the
    metrics and logs in git and every result file come out as the lead's."""
    mate = clone(team, tmp_path / "mate")
    sh(mate, "dvc", "pull")
    before = {p: p.read_bytes() for p in sorted((mate / "results").rglob("*")) + sorted((mate / "metrics").rglob("*"))
              if p.is_file()}
    assert any(p.suffix == ".mp4" for p in before) and any(p.name == "summary.json" for p in before)
    forced = sh(mate, "dvc", "repro", "--force")
    assert sorted(ran(forced.stdout)) == sorted(yaml.safe_load((mate / "dvc.yaml").read_text())["stages"])
    assert sh(mate, "git", "status", "--porcelain").stdout == "", sh(mate, "git", "diff").stdout
    assert {p: p.read_bytes() for p in before} == before


def exp_rows(repo: Path) -> tuple[dict, list[dict]]:
    """`dvc exp show --json` as (baseline, experiments), each {"name": ..., "params": ..., "metrics": {file: values}}."""
    def row(rev: dict) -> dict:
        return {"name": rev.get("name"), "params": rev["data"]["params"]["params.yaml"]["data"],
                "metrics": {path: m["data"] for path, m in rev["data"]["metrics"].items()}}
    (baseline,) = [rev for rev in json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout) if rev["rev"] != "workspace"]
    return row(baseline), [row(exp) for branch in baseline["experiments"] or [] for exp in branch["revs"]]


def test_lambda_cyc_sets_both_models_and_exp_show_leads_with_the_summary_figures(team, tmp_path):
    mate = clone(team, tmp_path / "mate")
    sh(mate, "dvc", "pull")
    run = sh(mate, "dvc", "exp", "run", "-S", "lambda_cyc=5")
    stages = ran(run.stdout)
    assert sorted(stages[:2]) == ["train_cyclegan", "train_recyclegan"]
    assert stages[2:] == ["infer", "merge_video", "metrics", "results_page"]
    assert "other settings" not in run.stderr  # a clone has no checkpoints: both trainings start at step 0
    params = yaml.safe_load((mate / "params.yaml").read_text())
    assert params == dict(yaml.safe_load((team / "params.yaml").read_text()), lambda_cyc=5)

    baseline, (experiment,) = exp_rows(mate)
    assert experiment["params"]["lambda_cyc"] == 5 and baseline["params"]["lambda_cyc"] == 10
    base, scores = (row["metrics"]["metrics/summary.json"] for row in (baseline, experiment))
    for model in MODELS:
        assert scores[model]["warping_error"] != base[model]["warping_error"], model

    shown = sh(mate, *EXP_SHOW).stdout
    header = [cell.strip() for cell in shown.splitlines()[0].strip("|").split("|")]
    # first the summary figures that moved, then the swept param, then the hashes of the changed dependencies
    figures = [h for h in header if h.split(".", 1)[-1] in FIGURES]
    assert header[:2] == ["Experiment", "Created"] and header[2:2 + len(figures)] == figures, shown
    assert {f"{model}.warping_error" for model in MODELS} <= set(figures) and header[2 + len(figures)] == "lambda_cyc"
    # at most 20 columns even with three summary figures per model and the State and Executor columns
    # that a queued sweep shows after Created (the figures then fill columns 5 to 10)
    assert len(header) - len(figures) + 3 * len(MODELS) + len(("State", "Executor")) <= 20, shown
    assert not [h for h in header if h.startswith("train.")], shown  # dvclive's losses are not DVC metrics


def test_exp_run_set_rewrites_one_line_of_the_shipped_params(tmp_path):
    """`-S lambda_cyc=5` on params.yaml as shipped changes that line alone, its comment kept."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"weight": {
        "cmd": "python -c \"import yaml; print(yaml.safe_load(open('params.yaml'))['lambda_cyc'])\" > weight.txt",
        "params": ["lambda_cyc"], "outs": ["weight.txt"]}}}))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    commit(tmp_path, "init")
    sh(tmp_path, "dvc", "exp", "run", "-S", "lambda_cyc=5")
    assert (tmp_path / "weight.txt").read_text() == "5\n"
    diff = sh(tmp_path, "git", "diff", "-U0", "params.yaml").stdout.splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-lambda_cyc: 10.0         # weight of the cycle-consistency terms of both models (both papers: 10)",
        "+lambda_cyc: 5            # weight of the cycle-consistency terms of both models (both papers: 10)"]


@pytest.fixture(scope="module")
def sweep(team, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A clone of the project from a bare git remote (its `origin`, as a team's git server) that ran a
    queued two-value sweep of a CycleGAN param; the clone and the output of `dvc exp run --run-all`."""
    root = tmp_path_factory.mktemp("sweep")
    sh(root, "git", "clone", "-q", "--bare", str(team), str(root / "origin.git"))
    mate = clone(root / "origin.git", root / "mate")
    sh(mate, "dvc", "pull")
    assert UP_TO_DATE in sh(mate, "dvc", "repro").stdout
    queued = sh(mate, "dvc", "exp", "run", "--queue", "-S", "demo.cyclegan.lambda_identity=0.25,1")
    assert queued.stdout.count("Queued experiment") == 2
    return mate, sh(mate, "dvc", "exp", "run", "--run-all")


def test_queued_sweep_reruns_cyclegan_and_what_follows_only(sweep):
    mate, run = sweep
    assert ran(run.stdout) == ["train_cyclegan", "infer", "merge_video", "metrics", "results_page"] * 2

    baseline, experiments = exp_rows(mate)
    assert sorted(exp["params"]["demo"]["cyclegan"]["lambda_identity"] for exp in experiments) == [0.25, 1]
    base = baseline["metrics"]["metrics/summary.json"]
    for exp in experiments:
        scores = exp["metrics"]["metrics/summary.json"]
        assert scores["recyclegan"] == base["recyclegan"]  # not retrained: same weights, same scores
        assert scores["cyclegan"]["warping_error"] != base["cyclegan"]["warping_error"]


def test_a_sweeps_experiment_travels_by_exp_push_and_pull_and_applies_without_retraining(sweep, team, tmp_path):
    """docs/team.md: `dvc exp push origin <exp>` sends the experiment's git ref to the git remote and its
    cached outputs to the DVC remote; a fresh clone `dvc exp pull`s it, `dvc exp show` lists it, and
    `dvc exp apply` + `dvc pull` give its models and results, with nothing to rerun."""
    mate, _ = sweep
    _, experiments = exp_rows(mate)
    (chosen,) = [exp for exp in experiments if exp["params"]["demo"]["cyclegan"]["lambda_identity"] == 1]
    pushed = sh(mate, "dvc", "exp", "push", "origin", chosen["name"])
    assert f"Pushed experiment {chosen['name']} to Git remote 'origin'" in pushed.stdout, pushed.stdout

    fresh = clone(mate.parent / "origin.git", tmp_path / "fresh")
    assert exp_rows(fresh)[1] == []  # a clone brings no experiment with it
    assert chosen["name"] in sh(fresh, "dvc", "exp", "list", "--name-only", "origin").stdout.split()
    sh(fresh, "dvc", "exp", "pull", "origin", chosen["name"])
    assert exp_rows(fresh)[1] == [chosen]  # its params and summary figures, as in the clone that ran it
    sh(fresh, "dvc", "exp", "apply", chosen["name"])
    sh(fresh, "dvc", "pull")
    assert UP_TO_DATE in sh(fresh, "dvc", "status").stdout  # every output is the one its dvc.lock names
    assert UP_TO_DATE in sh(fresh, "dvc", "repro").stdout  # nothing retrains
    assert yaml.safe_load((fresh / "params.yaml").read_text())["demo"]["cyclegan"]["lambda_identity"] == 1
    assert json.loads((fresh / "metrics" / "summary.json").read_text()) == chosen["metrics"]["metrics/summary.json"]
    for model, swept in (("cyclegan", True), ("recyclegan", False)):
        weights = Path("models") / model / "generators.safetensors"
        assert ((fresh / weights).read_bytes() != (team / weights).read_bytes()) is swept, model
    assert not (fresh / "checkpoints").exists()


@pytest.fixture(scope="module")
def plots_diff(sweep, tmp_path_factory) -> tuple[Path, list[str]]:
    """docs/team.md: the page of `dvc plots diff HEAD <exp> <exp>` for the sweep's two experiments; with their names."""
    mate, _ = sweep
    names = [exp["name"] for exp in exp_rows(mate)[1]]
    out = tmp_path_factory.mktemp("plots_diff")
    done = sh(mate, "dvc", "plots", "diff", "HEAD", *names, "-o", str(out))
    assert "failed" not in done.stderr.lower(), done.stderr  # DVC names a plot it could not read
    return out / "index.html", names


def test_plots_diff_shows_each_experiments_contact_sheets_with_no_script(sweep, plots_diff):
    """Image plots only: no script, nothing to fetch from a CDN; each revision's contact sheets, sample
    grids and metric charts side by side."""
    mate, _ = sweep
    page, names = plots_diff
    text = page.read_text()
    assert "<script" not in text and "://" not in text  # every image a file beside the page
    sheets = {}
    for video in ("sbat6n", "brbk7n"):
        for rev in ["HEAD", *names]:
            (src,) = re.findall(rf'<p>{re.escape(rev)}</p>\s*<img src="(static/[^"]*results_sheets_{video}\.png)"', text)
            sheets[rev, video] = (page.parent / src).read_bytes()
        assert sheets["HEAD", video] == (mate / "results" / "sheets" / f"{video}.png").read_bytes()
        assert all(sheets[name, video] != sheets["HEAD", video] for name in names), video  # CycleGAN's column changed
    for plot in ("logs_cyclegan_plots_images_samples.png", "metrics_plots_warping_error.png"):
        assert text.count(plot) == 1 + len(names), plot


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (Debian: apt-get install chromium; .ci/run installs it)")
def test_chromium_shows_every_image_of_the_plots_diff_page_offline(plots_diff):
    page, names = plots_diff
    seen = loaded(page)["images"]
    assert sum("results_sheets_" in image["src"] for image in seen) == 2 * (1 + len(names))
    for image in seen:
        assert image["complete"] and image["width"] > 0, image


def set_own_video(repo: Path, listed: bool) -> None:
    """List the own video `own` in videos.yaml as a test video, or take it off the list."""
    videos = [v for v in yaml.safe_load((repo / "videos.yaml").read_text())["videos"] if v["name"] != "own"]
    if listed:
        videos.append({"name": "own", "domain": "A", "path": "videos/own.mpg", "split": "test", "end": 1.0})
    (repo / "videos.yaml").write_text(yaml.safe_dump({"videos": videos}, default_flow_style=None, sort_keys=False))


def add_own_video(lead: Path, clip: str, *paths: str) -> None:
    """docs/team.md: an own video copied into videos/ and `dvc add`ed, listed as a test video; `dvc repro`
    trains nothing; then shared (`paths` committed besides) and pushed to the default remote."""
    shutil.copy(REPO / clip, lead / "videos" / "own.mpg")
    sh(lead, "dvc", "add", "videos/own.mpg")
    set_own_video(lead, listed=True)
    assert ran(sh(lead, "dvc", "repro").stdout) == NO_TRAINING
    assert (lead / "results" / "cyclegan" / "own.mp4").exists()
    share(lead, "own video", "videos.yaml", "videos/own.mpg.dvc", "videos/.gitignore", *paths)


def teammate_is_up_to_date(mate: Path) -> None:
    """docs/team.md: `git pull`, `git clean -f videos` (a video the lead removed), `dvc pull`; then nothing to run."""
    sh(mate, "git", "pull", "-q")
    sh(mate, "git", "clean", "-f", "videos")
    sh(mate, "dvc", "pull")
    assert UP_TO_DATE in sh(mate, "dvc", "status").stdout
    assert UP_TO_DATE in sh(mate, "dvc", "repro").stdout
    assert sh(mate, "git", "status", "--porcelain").stdout == ""


def test_an_own_video_travels_with_the_project_and_as_a_test_video_retrains_nothing(team, tmp_path):
    """The lead adds an own video in videos/ (`dvc add`), replaces it and removes it; each time a fresh
    teammate clone or pull gets it with `dvc pull`, and neither model is retrained."""
    lead = clone(team, tmp_path / "lead")
    sh(lead, "dvc", "pull")
    weights = {m: (lead / "models" / m / "generators.safetensors").read_bytes() for m in MODELS}
    add_own_video(lead, "data/samples/A/sgib8n.mpg")

    mate = clone(lead, tmp_path / "mate")
    teammate_is_up_to_date(mate)
    assert (mate / "videos" / "own.mpg").read_bytes() == (REPO / "data/samples/A/sgib8n.mpg").read_bytes()

    shutil.copy(REPO / "data/samples/A/srao1a.mpg", lead / "videos" / "own.mpg")  # replaced
    sh(lead, "dvc", "add", "videos/own.mpg")
    assert ran(sh(lead, "dvc", "repro").stdout) == NO_TRAINING
    share(lead, "own video replaced", "videos/own.mpg.dvc")
    teammate_is_up_to_date(mate)
    assert (mate / "videos" / "own.mpg").read_bytes() == (REPO / "data/samples/A/srao1a.mpg").read_bytes()

    sh(lead, "dvc", "remove", "videos/own.mpg.dvc")  # removed
    (lead / "videos" / "own.mpg").unlink()
    set_own_video(lead, listed=False)
    assert ran(sh(lead, "dvc", "repro").stdout) == NO_TRAINING
    assert not (lead / "results" / "cyclegan" / "own.mp4").exists()
    share(lead, "own video removed", "videos", "videos.yaml")  # `git add <folder>` stages deletions too
    teammate_is_up_to_date(mate)
    assert not (mate / "videos" / "own.mpg").exists()
    for model in MODELS:
        assert (mate / "models" / model / "generators.safetensors").read_bytes() == weights[model]


@pytest.fixture
def ssh(tmp_path) -> ssh_server.Server:
    """sshd on 127.0.0.1 (Debian's openssh-server) for the test."""
    if reason := ssh_server.unusable():
        pytest.skip(reason)
    with ssh_server.serving(tmp_path / "sshd") as server:
        yield server


def log_in(repo: Path, server: ssh_server.Server) -> None:
    """docs/team.md: each clone's own login to the SSH remote `storage`, in .dvc/config.local (not in git)."""
    sh(repo, "dvc", "remote", "modify", "--local", "storage", "user", server.user)
    sh(repo, "dvc", "remote", "modify", "--local", "storage", "keyfile", str(server.keyfile))


def test_the_team_path_runs_over_an_ssh_remote(team, ssh, tmp_path):
    """The lead makes an SSH remote (dvc-ssh) the default, adds an own video and pushes; a fresh clone
    pulls everything over SSH, and `dvc status` and `dvc repro` find nothing to do."""
    lead = clone(team, tmp_path / "lead")
    sh(lead, "dvc", "pull")  # from the folder remote, the default until the next line
    store = tmp_path / "store"
    sh(lead, "dvc", "remote", "add", "-d", "storage", ssh.url(store))
    log_in(lead, ssh)
    add_own_video(lead, "data/samples/A/sgib8n.mpg", ".dvc/config")
    assert "Cache and remote 'storage' are in sync." in sh(lead, "dvc", "status", "--cloud").stdout
    assert (store / "files" / "md5").is_dir()

    mate = clone(lead, tmp_path / "mate")
    log_in(mate, ssh)
    teammate_is_up_to_date(mate)
    assert (mate / "videos" / "own.mpg").read_bytes() == (REPO / "data/samples/A/sgib8n.mpg").read_bytes()
    for model in MODELS:  # pushed to the SSH remote only, by the lead
        assert (mate / "results" / model / "own.mp4").read_bytes() == (lead / "results" / model / "own.mp4").read_bytes()


def test_turning_the_stabiliser_off_reruns_inference_and_what_follows_only(team, tmp_path):
    """infer.temporal is an infer param: switching it reruns infer and what reads its output (merge_video,
    metrics, the results page), and the per-frame rows stay as they were (the option never changes
    the translation it starts from)."""
    mate = clone(team, tmp_path / "mate")
    sh(mate, "dvc", "pull")
    before = json.loads((mate / "metrics" / "translation.json").read_text())["crops"]
    assert set(before) == {"input", *MODELS, *(f"{m}+flow" for m in MODELS)}  # params.yaml ships temporal: flow
    run = sh(mate, "dvc", "exp", "run", "-S", "demo.infer.temporal=none")
    assert ran(run.stdout) == ["infer", "merge_video", "metrics", "results_page"]
    after = json.loads((mate / "metrics" / "translation.json").read_text())["crops"]
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
