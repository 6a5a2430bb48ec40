"""Catalogue of the bad inputs a user can give: each is refused with one line naming the file or
param, a non-zero exit, no partial output, and nothing earlier lost.

Inputs already tested where their check lives are listed in COVERED (a test here makes sure the
named tests still exist); the rest run through the real stage scripts below.
"""
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_train import GROUPS, ONE_THREAD
from tests.test_team_workflow import ENV
from tests.test_train_dvc import sh

REPO = Path(__file__).resolve().parents[1]
CLIP = Path("data/samples/A/bbaf2n.mpg")

COVERED = {  # bad input -> the test that runs it and checks its one-line message
    "missing video": "test_fetch::test_missing_local_file_names_video_and_path",
    "random bytes as video": "test_extract_stage::test_bad_videos_are_one_line_errors_and_leave_no_output",
    "truncated video": "test_extract_stage::test_bad_videos_are_one_line_errors_and_leave_no_output",
    "truncated mp4 / empty file": "test_video::test_bad_files_raise_one_line_error_naming_the_file",
    "trim outside the video": "test_video::test_trim_outside_the_video_is_an_error",
    "training video without a face": "test_crop_stage::test_errors_are_one_line_and_leave_no_output",
    "empty domain": "test_crop_stage::test_errors_are_one_line_and_leave_no_output",
    "URL returning 404": "test_fetch::test_stage_failure_is_one_line_and_leaves_no_output",
    "checksum mismatch": "test_fetch::test_checksum_mismatch_shows_both_digests_and_leaves_no_file",
    "crop larger than the load size": "test_train::test_crops_smaller_than_crop_size_name_the_param",
    "crop_size and predictor depth": "test_profile::test_training_groups_coerce_ints_and_name_bad_keys",
    "NaN loss": "test_train::test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint",
    "crop_faces output missing": "test_train::test_stage_reports_a_missing_input_in_one_line",
    "pickle as model": "test_translate::test_stage_reports_a_pickled_model_in_one_line",
    "translation missing": "test_merge::test_stage_reports_a_missing_translation_in_one_line",
    "bad metrics input": "test_metrics_stage::test_bad_input_is_one_line_and_leaves_no_output",
}


def test_covered_inputs_name_tests_that_exist():
    for where in COVERED.values():
        module, test = where.split("::")
        assert callable(getattr(importlib.import_module(f"tests.{module}"), test, None)), where


def video(**changes) -> dict:
    return dict({"name": "clip", "domain": "A", "path": str(REPO / CLIP)}, **changes)


def stage(tmp_path: Path, argv: list[str], params: dict) -> subprocess.CompletedProcess:
    """Run stages/<argv[0]>.py with `params` as params.yaml, in tmp_path."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{argv[0]}.py"), *argv[1:]], cwd=tmp_path,
                          capture_output=True, text=True, env=ONE_THREAD, timeout=120)


TRAIN = ["train", "cyclegan", "--faces", "faces", "--out", "models", "--checkpoints", "checkpoints", "--logs", "logs"]


@pytest.mark.parametrize("argv, params, line", [
    (TRAIN, {"cyclegan": dict(GROUPS["cyclegan"], lambda_cyc=-1)},
     "train: error: params: cyclegan.lambda_cyc: must be >= 0, got -1.0"),
    (TRAIN, {"cyclegan": dict(GROUPS["cyclegan"], lamda_cyc=5)},
     "train: error: params: cyclegan: unknown key(s) ['lamda_cyc']; known: "),
    (TRAIN[:1] + ["pix2pix"] + TRAIN[2:], {"cyclegan": GROUPS["cyclegan"]},
     "train.py: error: argument model: invalid choice: 'pix2pix'"),
    (["infer", "--faces", "faces", "--models", "models/cyclegan", "--out", "translated"], {"infer": 4},
     "infer: error: params: infer: must be a mapping, got 4"),
    (["fetch", "--out", "raw"], {"data": {"videos": [video()], "fps": 0}},
     "fetch: error: params: data.fps: must be > 0 (or null for the source rate), got 0.0"),
    (["fetch", "--out", "raw"], {"data": {"videos": [video(name=None)]}},
     "fetch: error: params: data.videos[0].name: must be text, got None"),
    (["fetch", "--out", "raw"], {"data": {"videos": [{"domain": "A", "path": str(REPO / CLIP)}]}},
     "fetch: error: params: data.videos[0]: missing key(s) ['name']"),
    (["fetch", "--out", "raw"], {"data": {"videos": [video(start=2, end=1)]}},
     "fetch: error: params: data.videos[0].end: must be after start"),
    (["fetch", "--out", "raw"], {"data": {"videos": [video(domain="C")]}},
     "fetch: error: params: data.videos[0].domain: must be A or B, got 'C'"),
], ids=["negative lambda", "unknown key", "unknown model", "group not a mapping", "fps 0", "null name",
        "video without name", "end before start", "unknown domain"])
def test_bad_params_are_refused_before_any_output(tmp_path, argv, params, line):
    result = stage(tmp_path, argv, params)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_failed_rerun_keeps_the_previous_output(tmp_path):
    """Run by hand, a stage that fails leaves the output of its last good run as it was."""
    good = stage(tmp_path, ["fetch", "--out", "raw"], {"data": {"videos": [video()]}})
    assert good.returncode == 0, good.stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()}
    bad = stage(tmp_path, ["fetch", "--out", "raw"], {"data": {"videos": [video(), video(name="lost", path="lost.mpg")]}})
    assert bad.stderr.strip().splitlines()[-1] == "fetch: error: video lost: lost.mpg: file not found"
    assert {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]  # no temp folder left


def test_under_dvc_a_failed_stage_output_comes_back_from_the_cache(tmp_path):
    """`dvc repro` deletes a stage's old output before running it; when the stage fails, the old
    output is still in the DVC cache and `dvc checkout` restores it (README "Bad inputs")."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"fetch": stages["fetch"]}}))
    for path in [p for p in stages["fetch"]["deps"] if p.endswith(".py")] + [str(CLIP)]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    params = {"data": {"videos": [video(path=str(CLIP))]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "dvc", "repro")
    before = (tmp_path / "data" / "raw" / "clip.mpg").read_bytes()

    params["data"]["videos"].append(video(name="lost", path="data/samples/lost.mpg"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    failed = subprocess.run(["dvc", "repro"], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert failed.returncode != 0
    assert "fetch: error: video lost: data/samples/lost.mpg: file not found" in failed.stderr
    assert not (tmp_path / "data" / "raw").exists()

    params["data"]["videos"].pop()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    sh(tmp_path, "dvc", "checkout", "fetch")
    assert (tmp_path / "data" / "raw" / "clip.mpg").read_bytes() == before
    assert "up to date" in sh(tmp_path, "dvc", "status").stdout
