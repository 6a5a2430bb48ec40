"""The metrics stage end to end under `dvc repro` on real crops in the contract's layout, and its errors.

Two stand-in "models" with known behaviour, both made of real frames: `cyclegan` flickers (the
input with alternating brightness, perfect cycle), `recyclegan` swaps the person (another real
clip of the target domain, cycle with noise). The report must find exactly that.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, copy_stages
from processes import ENV, sh
from translation_layout import grid_crops, write_faces, write_translated

FRAMES = 16


@pytest.fixture(scope="module")
def workdir(samples, tmp_path_factory):
    """data/faces, data/translated and params.yaml (demo params, fewer described frames)."""
    root = tmp_path_factory.mktemp("metrics_stage")
    a, b = samples / "A", samples / "B"
    clips = [(a / "bbaf2n.mpg", "A", "train"), (a / "lgil4n.mpg", "A", "train"), (b / "brbk7n.mpg", "B", "train"),
             (b / "lbbc2a.mpg", "B", "train"), (a / "sbat6n.mpg", "A", "test"), (b / "lrwp9a.mpg", "B", "test")]
    tests = write_faces(root / "data" / "faces", clips, FRAMES, 72)
    other_person = {"sbat6n": grid_crops(b / "brbk7n.mpg", FRAMES, skip=40),  # later frames than in training
                    "lrwp9a": grid_crops(a / "swbv4p.mpg", FRAMES)}  # a clip of the man not in the layout
    gain = np.where(np.arange(FRAMES) % 2, 1.0, 0.8)[:, None, None, None]
    noise = np.random.default_rng(0).normal(0, 8, (FRAMES, 72, 72, 3))
    for video, inputs in tests.items():
        write_translated(root / "data" / "translated", "cyclegan", video, (inputs * gain).round(), inputs)
        write_translated(root / "data" / "translated", "recyclegan", video, other_person[video],
                         (inputs + noise).clip(0, 255).round())
    (root / "results").mkdir()
    pd.DataFrame({"video": ["sbat6n", "sbat6n"], "model": ["cyclegan", "recyclegan"], "frames": FRAMES,
                  "changed_share": [0.081, 0.092], "changed_max": [0.09, 0.1]}).to_csv(root / "results" / "changed.csv",
                                                                                      index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["metrics"].update(identity_every=4, centroid_frames=8)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def run_stage(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / "metrics.py")], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def repro(workdir, tmp_path_factory):
    """`dvc repro metrics` with the stage entry of dvc.yaml, as committed, in a fresh git + DVC repository."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(workdir, repo, dirs_exist_ok=True)
    copy_stages(repo, "metrics")
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "repro", "metrics")
    return repo


def test_stage_reports_what_each_stand_in_model_does(repro):
    overall = json.loads((repro / "metrics" / "translation.json").read_text())
    for way in ("A2B", "B2A"):
        source, flicker, swap = (overall[m][way] for m in ("input", "cyclegan", "recyclegan"))
        assert flicker["warping_error"] > 50 * source["warping_error"]
        assert swap["identity_share"] == 1.0 and flicker["identity_share"] == 0.0 == source["identity_share"]
        assert swap["target_distance"] < flicker["target_distance"]
        assert swap["frechet"] < flicker["frechet"]
        assert flicker["psnr"] is None and flicker["ssim"] == pytest.approx(1.0)  # identical cycle: inf -> null
        assert swap["psnr"] == pytest.approx(30, abs=1)
        assert flicker["described"] == FRAMES // 4 and flicker["failures"] == 0
        assert "tof" not in source or source["tof"] is None

    headline = json.loads((repro / "metrics" / "summary.json").read_text())
    assert sorted(headline) == ["cyclegan", "recyclegan"]  # the models, over both directions
    assert headline["recyclegan"]["identity_share"] == 1.0 and headline["cyclegan"]["identity_share"] == 0.0
    assert headline["cyclegan"]["warping_error"] == pytest.approx(
        (overall["cyclegan"]["A2B"]["warping_error"] + overall["cyclegan"]["B2A"]["warping_error"]) / 2)  # one video each

    table = pd.read_csv(repro / "metrics" / "translation.csv")
    assert len(table) == 6 and set(table["model"]) == {"input", "cyclegan", "recyclegan"}
    assert np.isinf(table.loc[table["model"] == "cyclegan", "psnr"]).all()

    report = (repro / "metrics" / "report.md").read_text()
    assert "| sbat6n | A2B | cyclegan |" in report and "| lrwp9a | B2A | recyclegan |" in report
    assert "FID is not reported" in report
    assert "| sbat6n | recyclegan | 9.2% | 10.0% |" in report  # merge_video's changed pixels
    images = [line.rsplit("](", 1)[1][:-1] for line in report.splitlines() if line.startswith("![")]
    assert len(images) == 9  # report.PLOTS but PSNR to raw: no stabilised rows here
    for image in images:
        with Image.open(repro / "metrics" / image) as png:
            assert png.format == "PNG" and png.width > 300


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "data/translated/recyclegan/sbat6n_rec.npy").unlink(), "sbat6n_rec.npy: not found"),
    (lambda root: (root / "data/translated/cyclegan/temporal.json").unlink(), "temporal.json: not found"),
    (lambda root: np.save(root / "data/translated/cyclegan/lrwp9a.npy", np.zeros((3, 72, 72, 3), np.uint8)),
     "lrwp9a.npy: 3 crops, but boxes.csv lists 16 faces for it"),
    (lambda root: (root / "params.yaml").write_text((root / "params.yaml").read_text().replace(
        "face_rect: detect", "face_rect: hog")), "metrics.face_rect: must be detect or crop"),
], ids=["missing reconstruction", "no temporal.json", "short array", "bad param"])
def test_bad_input_is_one_line_and_leaves_no_output(workdir, tmp_path, damage, message):
    root = tmp_path / "work"
    shutil.copytree(workdir, root, ignore=shutil.ignore_patterns("metrics"))
    damage(root)
    done = run_stage(root)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr
    assert done.stderr.startswith("metrics: error: ") and "Traceback" not in done.stderr
    assert not (root / "metrics").exists()


def test_dvc_reads_the_metrics_and_the_stage_is_up_to_date(repro):
    shown = sh(repro, "dvc", "metrics", "show", "--json")
    metrics = json.loads(shown.stdout)[""]["data"]
    assert list(metrics) == ["metrics/summary.json"]  # translation.json is an output, not listed by `dvc exp show`
    assert metrics["metrics/summary.json"]["data"]["cyclegan"]["warping_error"] > 0
    assert "up to date" in sh(repro, "dvc", "status", "metrics").stdout
