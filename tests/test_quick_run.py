"""The GPU round trip of tools/gpu_sandbox/README.md on the CPU, at tiny size: pack the train crops
here, run tools/gpu_sandbox/quick_run.sh in a copy of the working tree with a Python that, like the
GPU image, has no DVC of its own (only the packed copy), bring back what the train stages wrote, `dvc commit` it as
their outputs, and `dvc repro` translates, merges and measures here.

Real GRID clips, real stages, real DVC in a temporary git repo; tiny networks for a few steps.
"""
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.processes import ENV, commit, sh
from helpers.repo import GROUPS, REPO, copy_stages, over_shipped
from safetensors import safe_open

from gpu_sandbox.offload import DEVICE_LACKS, PART_BYTES
from pipeline.models import MODELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIPS = [("bbaf2n", "A", "train"), ("sbat6n", "A", "test"), ("brbk7n", "B", None)]
# Absent from the GPU image besides DEVICE_LACKS: compiled speed-ups that DVC's packages fall back
# from, git bindings, and the CPU stages' decoders and face models.
ALSO_ABSENT = ("_ruamel_yaml", "orjson", "wcwidth", "pygit2", "git", "av", "dlib", "face_recognition_models")
# sitecustomize for the emulated GPU Python: DEVICE_LACKS load only from the carried folder.
GPU_IMAGE = '''
import importlib.abc, importlib.machinery, os, sys

class GpuImage(importlib.abc.MetaPathFinder):
    lacks, absent, site = (os.environ[k] for k in ("GPU_LACKS", "GPU_ABSENT", "GPU_SITE"))

    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in self.absent.split(","):
            raise ModuleNotFoundError(f"No module named {name!r} on the GPU machine", name=name)
        if path is not None or top not in self.lacks.split(","):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [self.site])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}: not in the carried packages", name=name)
        return spec

sys.meta_path.insert(0, GpuImage())
'''


def ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


@pytest.fixture(scope="module")
def lead(tmp_path_factory, samples):
    """A git + DVC repo with all of dvc.yaml on tiny settings, the GPU sandbox tools, and crop_faces run."""
    repo = tmp_path_factory.mktemp("quick") / "lead"
    repo.mkdir()
    copy_stages(repo)
    for tree in ("pipeline", "tools"):
        shutil.copytree(REPO / tree, repo / tree, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    videos = []
    for name, domain, split in CLIPS:
        clip = Path("data/samples") / domain / f"{name}.mpg"
        (repo / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples / domain / f"{name}.mpg", repo / clip)
        videos.append(dict(name=name, domain=domain, path=str(clip), start=0, end=1.0,
                           **({"split": split} if split else {})))
    (repo / "videos.yaml").write_text(yaml.safe_dump({"videos": videos}, sort_keys=False))
    params = over_shipped({"data": {"load_size": 36}, "merge": {"crf": 30, "sheet_frames": 1},
                           "metrics": {"face_rect": "crop", "face_size": 150, "identity_every": 1000, "centroid_frames": 2},
                           **{group: dict(values, n_epochs=0.5, n_epochs_decay=0.5, export="bf16")  # as the quick profile
                              for group, values in GROUPS.items()}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "core.analytics", "false")
    commit(repo, "pipeline")
    assert ran(sh(repo, "dvc", "repro", "crop_faces").stdout) == ["fetch", "extract_frames", "crop_faces"]
    commit(repo, "crops")
    return repo


def gpu_copy(lead: Path, to: Path) -> Path:
    """What the device tool sends: git's files of the working tree plus the carried .quick/inputs."""
    files = sh(lead, "git", "ls-files", "--cached", "--others", "--exclude-standard").stdout.split()
    for file in files:
        (to / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lead / file, to / file)
    shutil.copytree(lead / ".quick" / "inputs", to / ".quick" / "inputs")
    return to


def quick_run(copy: Path, work: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    image = work.parent / "gpu_image"
    image.mkdir(exist_ok=True)
    (image / "sitecustomize.py").write_text(GPU_IMAGE)
    env = dict(ENV, OUT=str(out), WORK=str(work), PYTHON=sys.executable, PYTHONPATH=str(image),
               GPU_LACKS=",".join(DEVICE_LACKS), GPU_ABSENT=",".join(ALSO_ABSENT), GPU_SITE=str(work / "site"))
    done = subprocess.run(["bash", "tools/gpu_sandbox/quick_run.sh", *args], cwd=copy, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_gpu_round_trip_brings_back_what_the_train_stage_wrote_and_dvc_translates_here(lead, tmp_path):
    packed = sh(lead, sys.executable, "tools/gpu_sandbox/offload.py", "pack-inputs").stdout
    assert "faces.tar" in packed and "site.tar.xz" in packed
    assert "?? .quick" not in sh(lead, "git", "status", "--porcelain").stdout  # git-ignored: travels by `carry`
    copy, work, out = gpu_copy(lead, tmp_path / "gpu"), tmp_path / "work", tmp_path / "out"
    for model in MODELS:
        log = quick_run(copy, work, out, model).stdout
        assert f"{model}: " in log and "img/s overall" in log and "img/s at the end" in log
    assert sorted(p.name for p in (work / "faces").iterdir()) == ["A_train.npy", "B_train.npy", "train_crops.csv"]
    for name in ("A_train.npy", "B_train.npy", "train_crops.csv"):  # the train stages' inputs, bit for bit
        assert (work / "faces" / name).read_bytes() == (lead / "data" / "faces" / name).read_bytes()
    returned = sorted(p.name for p in out.iterdir())
    assert returned == ["cyclegan.log", "cyclegan.tgz.00", "recyclegan.log", "recyclegan.tgz.00"]
    assert all(p.stat().st_size <= PART_BYTES for p in out.iterdir())

    placed = sh(lead, sys.executable, "tools/gpu_sandbox/offload.py", "finish", str(out)).stdout.splitlines()
    assert placed == [f"placed {folder}/{m}" for m in MODELS for folder in ("models", "logs")]
    for model in MODELS:
        for file in ("generators.safetensors", "architecture.json"):  # byte for byte what the stage wrote
            assert (lead / "models" / model / file).read_bytes() == (work / model / "models" / model / file).read_bytes()
        with safe_open(lead / "models" / model / "generators.safetensors", "pt") as f:
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}  # the params' export: bf16
        assert json.loads((lead / "logs" / model / "metrics.json").read_text())["step"] > 0
    sh(lead, "dvc", "commit", "-f", "train_cyclegan", "train_recyclegan")  # the outputs of those stages, as written
    assert ran(sh(lead, "dvc", "repro").stdout) == ["infer", "merge_video", "metrics", "results_page"]
    assert (lead / "results" / "sheets" / "sbat6n.png").exists()
    figures = json.loads((lead / "metrics" / "translation.json").read_text())
    assert set(figures["crops"]) == {"input", *MODELS, *(f"{m}+flow" for m in MODELS)}  # params.yaml: temporal flow
    assert set(figures["merged"]) == {"input", *MODELS}  # the videos merged from the stabilised translations
    assert "Data and pipelines are up to date" in sh(lead, "dvc", "repro").stdout


def test_a_variant_goes_to_its_own_folder_with_its_params(lead, tmp_path):
    sh(lead, sys.executable, "tools/gpu_sandbox/offload.py", "pack-inputs")
    copy, work, out = gpu_copy(lead, tmp_path / "gpu"), tmp_path / "work", tmp_path / "out"
    log = quick_run(copy, work, out, "cyclegan", "b2", "demo.cyclegan.batch_size=2", "demo.cyclegan.lr=0.0004").stdout
    assert "steps of 2 in" in log
    assert sorted(p.name for p in out.iterdir()) == ["b2_cyclegan.log", "b2_cyclegan.tgz.00"]
    placed = sh(lead, sys.executable, "tools/gpu_sandbox/offload.py", "finish", str(out)).stdout.splitlines()
    assert placed == [f"placed variants/b2/{p}" for p in ("models/cyclegan", "logs/cyclegan")]
    variant = lead / "variants" / "b2"
    sh(lead, sys.executable, "stages/infer.py", "--models", str(variant / "models" / "cyclegan"),
       "--out", str(variant / "data" / "translated"))
    assert (variant / "data" / "translated" / "cyclegan" / "sbat6n.npy").exists()
    assert "variants" not in sh(lead, "git", "status", "--porcelain").stdout  # git-ignored


def test_bad_inputs_are_one_line_errors(tmp_path, lead):
    done = subprocess.run([sys.executable, "tools/gpu_sandbox/offload.py", "finish", str(tmp_path)], cwd=lead, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "no result parts" in done.stderr and "Traceback" not in done.stderr
    for broken in (b"not a tar", gzip.compress(b"0" * 10000)[:200]):  # not an archive; one cut short
        (tmp_path / "cyclegan.tgz.00").write_bytes(broken)
        done = subprocess.run([sys.executable, "tools/gpu_sandbox/offload.py", "finish", str(tmp_path)], cwd=lead, env=ENV,
                              capture_output=True, text=True)
        assert done.returncode == 1 and "not a complete result archive" in done.stderr and "Traceback" not in done.stderr
    for change, error in (("demo.cyclegan.batch_size=0", "cyclegan.batch_size: must be >= 1"),
                          ("cyclegan.batch_size=2", "expected an existing dotted.key=value")):  # not the profile's
        done = subprocess.run([sys.executable, "tools/gpu_sandbox/offload.py", "variant", "params.yaml",
                               str(tmp_path / "p.yaml"), change], cwd=lead, env=ENV, capture_output=True, text=True)
        assert done.returncode == 1 and error in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "p.yaml").exists()
