"""Catalogue of the bad inputs a user can give: each is refused by the stage script with one line
naming the file or param, a non-zero exit and no partial output, and nothing earlier is lost.

Every entry is a real stage run. Here: bad params of each kind, a missing video (with the output of
the last good run kept), a checksum mismatch, a truncated mp4, an empty file, a trim outside a
video, crops smaller than crop_size, compile without a C++ compiler, a training that diverges (NaN
loss). In the stage's own test file: random bytes and a truncated AVI as video (test_extract_stage),
a training video without a face, an empty domain and a damaged frame store (test_crop_stage), a URL
returning 404 (test_fetch), crop_faces output missing (test_train), a pickle as model
(test_translate), a missing translation (test_merge), bad metrics input (test_metrics_stage).
test_video, test_fetch and test_train also test the same checks in-process, where the library raises
them.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.decoders import decode
from helpers.processes import ENV, sh
from helpers.repo import GROUPS, REPO, copy_stages, over_shipped

from pipeline.store.video import VideoWriter

pytestmark = pytest.mark.integration

CLIP = Path("data/samples/A/bbaf2n.mpg")  # 3 s, 25 fps, 360x288


def video(**changes) -> dict:
    return dict({"name": "clip", "domain": "A", "path": str(REPO / CLIP)}, **changes)


def stage(tmp_path: Path, argv: list[str], params: dict, **env: str) -> subprocess.CompletedProcess:
    """Run stages/<argv[0]>.py with `params` as params.yaml (its `videos` as videos.yaml), in tmp_path,
    `env` added to its environment."""
    params = dict(params)
    if "videos" in params:
        (tmp_path / "videos.yaml").write_text(yaml.safe_dump({"videos": params.pop("videos")}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped(params)))
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{argv[0]}.py"), *argv[1:]], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(ENV, **env), timeout=120)


def train_argv(model: str = "cyclegan", faces: str | Path = "faces") -> list[str]:
    return ["train", model, "--faces", str(faces), "--out", "models", "--checkpoints", "checkpoints", "--logs", "logs"]


def files(folder: Path) -> list[str]:
    """Every file and folder under `folder`, relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refuse(tmp_path: Path, argv: list[str], params: dict, **env: str) -> list[str]:
    """Run a stage that must fail: exit 1, no traceback, no file added or removed. Its stderr lines."""
    before = files(tmp_path)
    result = stage(tmp_path, argv, params, **env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    # no output, no temp folder
    assert set(files(tmp_path)) - {"params.yaml", "videos.yaml"} == set(before) - {"params.yaml", "videos.yaml"}
    return result.stderr.strip().splitlines()


@pytest.mark.parametrize("argv, params, line", [
    (train_argv(), {"lambda_cyc": -1, "cyclegan": GROUPS["cyclegan"]},
     "train: error: params: lambda_cyc: must be >= 0, got -1.0"),
    (train_argv(), {"cyclegan": dict(GROUPS["cyclegan"], lamda_cyc=5)},
     "train: error: params: cyclegan: unknown key(s) ['lamda_cyc']; known: "),
    (train_argv("recyclegan"), {"recyclegan": dict(GROUPS["recyclegan"], crop_size=48)},
     "train: error: params: recyclegan.crop_size: must be a multiple of 2**predictor_downs = 32, got 48"),
    (["infer", "--faces", "faces", "--models", "models/cyclegan", "--out", "translated"], {"infer": 4},
     "infer: error: params: infer: must be a mapping, got 4"),
    (["extract_frames", "--raw", "raw", "--out", "frames"], {"data": {"fps": 0}},
     "extract_frames: error: params: data.fps: must be > 0 (or null for the source rate), got 0.0"),
    (["extract_frames", "--raw", "raw", "--out", "frames"], {"data": {"jpeg_quality": 101}},
     "extract_frames: error: params: data.jpeg_quality: must be in 1..100, got 101"),
    (["fetch", "--out", "raw"], {"videos": [video(name=None)]},
     "fetch: error: videos.yaml: videos[0].name: must be text, got None"),
    (["fetch", "--out", "raw"], {"videos": [{"domain": "A", "path": str(REPO / CLIP)}]},
     "fetch: error: videos.yaml: videos[0]: missing key(s) ['name']"),
    (["fetch", "--out", "raw"], {"videos": [video(), video(name="late", start=2, end=1)]},
     "fetch: error: videos.yaml: videos[1].end: must be after start"),
    (["fetch", "--out", "raw"], {"videos": [video(domain="C")]},
     "fetch: error: videos.yaml: videos[0].domain: must be A or B, got 'C'"),
], ids=["negative lambda", "unknown key", "crop_size and predictor depth", "group not a mapping", "fps 0",
        "jpeg quality 101", "null name", "video without name", "end before start", "unknown domain"])
def test_bad_params_are_refused_before_any_output(tmp_path, argv, params, line):
    assert refuse(tmp_path, argv, params)[-1].startswith(line)


def fetched(tmp_path: Path, *videos: dict) -> tuple[list[str], dict]:
    """data/raw made by the fetch stage from `videos`; the extract_frames argv and params that read it."""
    done = stage(tmp_path, ["fetch", "--out", "raw"], {"videos": list(videos)})
    assert done.returncode == 0, done.stderr
    return ["extract_frames", "--raw", "raw", "--out", "frames"], {"data": {}}


def checksum_mismatch(tmp_path: Path, faces: Path) -> tuple[list[str], dict, str]:
    return (["fetch", "--out", "raw"], {"videos": [video(sha256="0" * 64)]},
            f"fetch: error: video clip: {REPO / CLIP}: sha256 mismatch: expected {'0' * 64}, got ")


def truncated_mp4(tmp_path: Path, faces: Path) -> tuple[list[str], dict, str]:
    """An mp4 cut to two thirds: its header, written first (faststart), declares frames that are gone."""
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    with VideoWriter(whole, 25, 360, 288) as writer:
        for rgb in decode(REPO / CLIP, 25):
            writer.write(rgb)
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size * 2 // 3])
    whole.unlink()
    return *fetched(tmp_path, video(), video(name="cut", path=str(cut))), "extract_frames: error: raw/cut.mp4: truncated"


def empty_file(tmp_path: Path, faces: Path) -> tuple[list[str], dict, str]:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    return (*fetched(tmp_path, video(), video(name="empty", path=str(empty))),
            "extract_frames: error: raw/empty.mp4: not a readable video")


def crops_smaller_than_crop_size(tmp_path: Path, faces: Path) -> tuple[list[str], dict, str]:
    return (train_argv(faces=faces), {"cyclegan": dict(GROUPS["cyclegan"], crop_size=64)},
            f"train: error: cyclegan.crop_size 64 does not fit {faces / 'A_train.npy'} (40 px crops")


@pytest.mark.parametrize("case", [checksum_mismatch, truncated_mp4, empty_file, crops_smaller_than_crop_size],
                         ids=lambda case: case.__name__.replace("_", " "))
def test_bad_inputs_are_refused_before_any_output(tmp_path, tiny_faces, case):
    argv, params, line = case(tmp_path, tiny_faces)
    assert refuse(tmp_path, argv, params)[-1].startswith(line)


def test_a_trim_outside_a_later_video_fails_before_any_video_is_decoded(tmp_path):
    """extract_frames checks the trim of every video before it decodes the first, so its error is
    all it prints: no progress bar, no time lost decoding a video that is thrown away."""
    argv, params = fetched(tmp_path, video(), video(name="late", start=5.0))
    assert refuse(tmp_path, argv, params) == [
        "extract_frames: error: raw/late.mpg: trim from 5.0 s to the end selects no frames (video lasts 3.00 s)"]


@pytest.mark.parametrize("argv, params", [
    (train_argv(), {"cyclegan": dict(GROUPS["cyclegan"], crop_size=32, compile=True)}),
    (["infer", "--faces", "faces", "--models", "models/cyclegan", "--out", "out"], {"infer": {"compile": True}}),
], ids=["train", "infer"])
def test_compile_on_the_cpu_without_a_cpp_compiler_is_refused_at_once(tmp_path, tiny_faces, argv, params):
    """torch.compile builds C++ kernels on the CPU; inductor runs $CXX (else g++). Without one the
    stage fails before any work, naming the switch, instead of deep inside the first step."""
    shutil.copytree(tiny_faces, tmp_path / "faces")
    group = next(iter(params))
    assert refuse(tmp_path, argv, params, CXX="no-such-c++", CUDA_VISIBLE_DEVICES="")[-1] == (
        f"{argv[0]}: error: params: {group}.compile: torch.compile on the CPU needs a C++ compiler "
        f"(no-such-c++ not found; set CXX or {group}.compile false)")


def test_a_diverging_training_stops_in_one_line_and_exports_no_model(tmp_path, tiny_faces):
    """lr 1e30 makes a loss NaN at step 2: the stage stops there, naming the step and the param to
    lower, and exports no generators. (The dvclive logs of step 1 stay: they are written as the
    training goes, for live plots.)"""
    params = {"cyclegan": dict(GROUPS["cyclegan"], lr=1e30, log_every=1, checkpoint_every=100)}
    result = stage(tmp_path, train_argv(faces=tiny_faces), params)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("train: error: cyclegan: a loss became NaN or infinite at step "
                                                      "2 (training diverged; try a lower cyclegan.lr); no checkpoint "
                                                      "was saved")
    assert not (tmp_path / "models").exists() and not (tmp_path / "checkpoints").exists()


def test_a_failed_rerun_keeps_the_previous_output(tmp_path):
    """Run by hand, a stage that fails leaves the output of its last good run as it was."""
    good = stage(tmp_path, ["fetch", "--out", "raw"], {"videos": [video()]})
    assert good.returncode == 0, good.stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()}
    bad = stage(tmp_path, ["fetch", "--out", "raw"], {"videos": [video(), video(name="lost", path="lost.mpg")]})
    assert bad.stderr.strip().splitlines()[-1] == "fetch: error: video lost: lost.mpg: file not found"
    assert {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw", "videos.yaml"]  # no temp folder left


def test_under_dvc_a_failed_stage_output_comes_back_from_the_cache(tmp_path):
    """`dvc repro` deletes a stage's old output before running it; when the stage fails, the old
    output is still in the DVC cache and `dvc checkout` restores it (docs/robustness.md)."""
    copy_stages(tmp_path, "fetch")
    (tmp_path / CLIP).parent.mkdir(parents=True)
    shutil.copy(REPO / CLIP, tmp_path / CLIP)
    listed = {"videos": [video(path=str(CLIP))]}
    (tmp_path / "videos.yaml").write_text(yaml.safe_dump(listed))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "dvc", "repro")
    before = (tmp_path / "data" / "raw" / "clip.mpg").read_bytes()

    listed["videos"].append(video(name="lost", path="data/samples/lost.mpg"))
    (tmp_path / "videos.yaml").write_text(yaml.safe_dump(listed))
    failed = subprocess.run(["dvc", "repro"], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert failed.returncode != 0
    assert "fetch: error: video lost: data/samples/lost.mpg: file not found" in failed.stderr
    assert not (tmp_path / "data" / "raw").exists()

    listed["videos"].pop()
    (tmp_path / "videos.yaml").write_text(yaml.safe_dump(listed))
    sh(tmp_path, "dvc", "checkout", "fetch")
    assert (tmp_path / "data" / "raw" / "clip.mpg").read_bytes() == before
    assert "up to date" in sh(tmp_path, "dvc", "status").stdout
