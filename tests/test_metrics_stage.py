"""The metrics stage end to end under `dvc repro` on real crops in the contract's layout, and its errors.

Two stand-in "models" with known behaviour, both made of real frames: `cyclegan` flickers (the
input mirrored in every other frame, perfect cycle; a brightness flicker would not do: the merge's
colour match takes it out), `recyclegan` swaps the person (another real
clip of the target domain, cycle with noise). Their crops are merged into the test videos by the
real merge_video code with the shipped params. The report must find exactly that, on the crops
and on the merged videos, and name the test video without a face (real footage: the studio's
background beside a GRID speaker).
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.processes import ENV, sh
from helpers.real_frames import write_frames
from helpers.repo import REPO, copy_stages, over_shipped
from helpers.translation_layout import grid_crops, write_faces, write_translated
from PIL import Image

from pipeline.common.params import load_group
from pipeline.models import MODELS
from pipeline.translate.merge_video import merge_test_videos

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRAMES = 16


@pytest.fixture(scope="module")
def workdir(samples, tmp_path_factory):
    """data/frames, data/raw, data/faces, data/translated, results (merged with the shipped merge params)
    and params.yaml (the shipped ones, fewer described frames)."""
    root = tmp_path_factory.mktemp("metrics_stage")
    a, b = samples / "A", samples / "B"
    clips = [(a / "bbaf2n.mpg", "A", "train"), (a / "lgil4n.mpg", "A", "train"), (b / "brbk7n.mpg", "B", "train"),
             (b / "lbbc2a.mpg", "B", "train"), (a / "sbat6n.mpg", "A", "test"), (b / "lrwp9a.mpg", "B", "test")]
    tests = write_faces(root / "data" / "faces", clips, FRAMES, 72, faceless={"backdrop": "A"})
    other_person = {"sbat6n": grid_crops(b / "brbk7n.mpg", FRAMES, skip=40),  # later frames than in training
                    "lrwp9a": grid_crops(a / "swbv4p.mpg", FRAMES)}  # a clip of the man not in the layout
    noise = np.random.default_rng(0).normal(0, 8, (FRAMES, 72, 72, 3))
    for video, inputs in tests.items():
        flicker = np.where((np.arange(FRAMES) % 2 == 1)[:, None, None, None], inputs[:, :, ::-1], inputs)
        write_translated(root / "data" / "translated", "cyclegan", video, flicker, inputs)
        write_translated(root / "data" / "translated", "recyclegan", video, other_person[video],
                         (inputs + noise).clip(0, 255).round())
    for model in MODELS:  # infer's output for a video without a face: no crops
        write_translated(root / "data" / "translated", model, "backdrop", *[np.zeros((0, 72, 72, 3))] * 2)
    sources = [(path, domain) for path, domain, split in clips if split == "test"]
    write_frames(root / "data" / "frames", [dict(name=p.stem, domain=d, split="test", path=p, limit=FRAMES)
                                            for p, d in sources] +
                 [dict(name="backdrop", domain="A", split="test", path=a / "sgib8n.mpg", limit=FRAMES,
                       region=(0, 0, 100, 120))])  # blue backdrop and no face
    (root / "data" / "raw").mkdir()
    for path, _ in sources + [(a / "sgib8n.mpg", "A")]:
        shutil.copy(path, root / "data" / "raw")
    (root / "params.yaml").write_text(yaml.safe_dump(over_shipped({"metrics": {"identity_every": 4, "centroid_frames": 8}})))
    merge_test_videos(*(root / "data" / d for d in ("frames", "faces", "raw")),
                      [root / "data" / "translated" / m for m in MODELS], root / "results",
                      load_group("merge", root / "params.yaml"))
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
    overall = json.loads((repro / "metrics" / "translation.json").read_text())["crops"]
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
    crops = table[table["scored"] == "crops"]
    assert len(crops) == 6 and set(crops["model"]) == {"input", "cyclegan", "recyclegan"}
    assert np.isinf(crops.loc[crops["model"] == "cyclegan", "psnr"]).all()

    report = (repro / "metrics" / "report.md").read_text()
    assert "| crops | sbat6n | A2B | cyclegan |" in report and "| crops | lrwp9a | B2A | recyclegan |" in report
    assert "FID is not reported" in report
    assert re.search(r"\| sbat6n \| recyclegan \| \d+\.\d% \| \d+\.\d% \|", report)  # merge_video's changed pixels
    images = [line.rsplit("](", 1)[1][:-1] for line in report.splitlines() if line.startswith("![")]
    assert len(images) == 9  # report.PLOTS but PSNR to raw: no stabilised rows here
    for image in images:
        with Image.open(repro / "metrics" / image) as png:
            assert png.format == "PNG" and png.width > 300


def test_merged_videos_are_scored_as_the_viewer_sees_them(repro):
    """The faces cut from the merged videos: the swapped person is seen, the flicker is seen, the
    source cut the same way moves as itself; summary.json carries the merged identity share."""
    merged = json.loads((repro / "metrics" / "translation.json").read_text())["merged"]
    assert sorted(merged) == ["cyclegan", "input", "recyclegan"]
    for way in ("A2B", "B2A"):
        source, flicker, swap = (merged[m][way] for m in ("input", "cyclegan", "recyclegan"))
        assert source["identity_share"] == 0.0 == flicker["identity_share"] and swap["identity_share"] >= 0.75
        assert swap["target_distance"] < flicker["target_distance"]
        assert flicker["warping_error"] > 10 * source["warping_error"]
        assert source["mouth_motion"] == pytest.approx(1.0) and source["failures"] == 0
        assert flicker["described"] == FRAMES // 4 and "psnr" not in flicker
    headline = json.loads((repro / "metrics" / "summary.json").read_text())
    assert headline["recyclegan"]["merged_identity_share"] >= 0.75 and headline["cyclegan"]["merged_identity_share"] == 0
    table = pd.read_csv(repro / "metrics" / "translation.csv")
    assert len(table[table["scored"] == "merged"]) == 6 and "backdrop" not in set(table["video"])
    report = (repro / "metrics" / "report.md").read_text()
    assert "## Overall: merged result videos (what the viewer sees)" in report
    assert "| merged | sbat6n | A2B | recyclegan |" in report
    assert "No face found in test video(s) backdrop: no face: result is the source" in report


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
