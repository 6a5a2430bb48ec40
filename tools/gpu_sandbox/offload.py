"""Train on a GPU machine that reaches nothing else, and bring back what the train stages wrote
(tools/gpu_sandbox/README.md).

Such a machine gets a copy of the working tree plus at most 64 MiB of git-ignored inputs, and
hands back at most 8 files of 16 MiB each (64 MiB in all) per command; its Python has torch,
OpenCV, pandas and safetensors but no DVC. Only training runs there; translation, merge and
metrics run here under `dvc repro`. As `python tools/gpu_sandbox/offload.py <step>`:

- `pack-inputs` (CPU): what the train stages read (both domains' train crops as lossless WebP,
  checked by sha256 on arrival, and train_crops.csv) as one archive, and the pure-Python packages
  that the train stage's logger (dvclive, which imports DVC) needs and the GPU image lacks, copied
  from this environment (compiled parts left out: each has a pure-Python fallback).
- `unpack-inputs` (GPU): the .npy arrays and the packages back.
- `pack-results` (GPU): a train stage's outputs (models/<model>, logs/<model>) as they are, one
  tar.gz in parts. A paper-width model fits when its train params export the generators in bf16
  (`export: bf16`, the quick profile).
- `speed` (GPU): training images per second, overall and at the end of the run.
- `finish` (CPU): joins the parts and puts the folders where dvc.yaml expects them, byte for byte
  what the stage wrote; `dvc commit train_<model>` then records them as that stage's outputs.
- `variant`: a params file with some keys changed (the batch-size comparison of the README here).
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import re
import shutil
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from pipeline.common.cli import run_stage
from pipeline.common.domains import DOMAINS
from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_dir, atomic_file
from pipeline.common.params import GROUPS, load_group
from pipeline.store.checksum import file_sha256
from pipeline.store.faces import CropArrayWriter
from pipeline.store.tables import required

# What dvclive imports that the GPU image lacks (its other imports, numpy, pandas, PIL, requests,
# fsspec, psutil and the like, are there): top-level names in this environment.
DEVICE_LACKS = ("dvclive", "dvc", "dvc_data", "dvc_objects", "dvc_http", "dvc_render", "dvc_studio_client",
                "scmrepo", "dulwich", "funcy", "ruamel", "flatten_dict", "flufl", "zc", "diskcache", "dpath",
                "public", "pygtrie", "sqltrie", "voluptuous")
WEBP_LOSSLESS = [cv2.IMWRITE_WEBP_QUALITY, 101]  # WebP quality above 100: lossless
PART_BYTES = 15 * 2**20  # under the 16 MiB a returned file may have
MAX_PARTS = 7            # of the 8 files a command may return; one is left for its log
MANIFEST = "manifest.json"


def write_crop_archive(path: Path, arrays: dict[str, Path], files: tuple[Path, ...] = ()) -> None:
    """A tar of `manifest.json`, each uint8 [N, S, S, 3] array as its images (lossless WebP) back to
    back in `<name>.bin`, and `files` as they are."""
    manifest = {"arrays": {}, "files": [f.name for f in files]}
    with atomic_file(path) as tmp, tarfile.open(tmp, "w") as tar:
        for name, source in arrays.items():
            crops = np.load(source, mmap_mode="r")
            sizes, blob = [], io.BytesIO()
            for crop in tqdm(crops, desc=f"{path.name}: {name}", unit="crop", leave=False):
                ok, data = cv2.imencode(".webp", np.ascontiguousarray(crop[..., ::-1]), WEBP_LOSSLESS)
                if not ok:
                    raise FacecycleError(f"{source}: WebP encoding failed")
                sizes.append(len(data))
                blob.write(data.tobytes())
            manifest["arrays"][name] = {"shape": list(crops.shape), "sizes": sizes, "sha256": file_sha256(source)}
            add_bytes(tar, f"{name}.bin", blob.getvalue())
        for file in files:
            tar.add(file, arcname=file.name)
        add_bytes(tar, MANIFEST, json.dumps(manifest).encode())


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def read_crop_archive(path: Path, out_dir: Path) -> None:
    """Rebuild `<name>.npy` for each array of a write_crop_archive tar in `out_dir` (replaced whole);
    an array that does not come back bit for bit is an error."""
    with tarfile.open(path) as tar, atomic_dir(out_dir) as tmp:
        manifest = json.loads(tar.extractfile(MANIFEST).read())
        for name, entry in manifest["arrays"].items():
            blob = np.frombuffer(tar.extractfile(f"{name}.bin").read(), np.uint8)
            count, size = entry["shape"][:2]
            ends = np.cumsum(entry["sizes"])
            with CropArrayWriter(tmp / f"{name}.npy", count, size) as array:
                for i, end in enumerate(tqdm(ends, desc=f"{path.name}: {name}", unit="crop", leave=False)):
                    array.append(cv2.imdecode(blob[end - entry["sizes"][i]:end], cv2.IMREAD_COLOR)[None, ..., ::-1])
            if file_sha256(tmp / f"{name}.npy") != entry["sha256"]:
                raise FacecycleError(f"{path}: {name} did not decode to the packed array (sha256 differs)")
        for name in manifest["files"]:
            (tmp / name).write_bytes(tar.extractfile(name).read())


def pack_site(dest: Path) -> None:
    """The DEVICE_LACKS packages of this environment, pure-Python files only, as a tar.xz."""
    with atomic_file(dest) as tmp, tarfile.open(tmp, "w:xz") as tar:
        for name in DEVICE_LACKS:
            spec = importlib.util.find_spec(name)
            if spec is None:
                raise FacecycleError(f"{name}: not installed here, so it cannot be packed for the GPU machine")
            roots = [Path(p) for p in spec.submodule_search_locations or []] or [Path(spec.origin)]
            for root in roots:
                tar.add(root, arcname=root.name,
                        filter=lambda info: None if info.name.endswith((".so", ".pyc")) or "__pycache__" in info.name
                        else info)


def pack_inputs(faces: Path, out: Path) -> list[Path]:
    """`out/faces.tar` (the train stages' inputs) and `out/site.tar.xz` (the packages); returns both."""
    arrays = {f"{d}_train": required(faces / f"{d}_train.npy", "crop_faces") for d in DOMAINS}
    out.mkdir(parents=True, exist_ok=True)
    write_crop_archive(out / "faces.tar", arrays, (required(faces / "train_crops.csv", "crop_faces"),))
    pack_site(out / "site.tar.xz")
    return [out / "faces.tar", out / "site.tar.xz"]


def unpack_inputs(inputs: Path, work: Path) -> None:
    """`work/faces` and `work/site` from pack_inputs' files in `inputs`."""
    read_crop_archive(inputs / "faces.tar", work / "faces")
    with tarfile.open(inputs / "site.tar.xz") as tar, atomic_dir(work / "site") as tmp:
        tar.extractall(tmp, filter="data")


def pack_results(root: Path, model: str, out: Path, name: str, prefix: str = "") -> list[Path]:
    """Write `root`'s models/<model> and logs/<model> (the train stage's outputs, as they are) as
    `out/<name>.tgz.NN` parts; inside, paths are `prefix` + those. Returns the parts."""
    roots = [f"models/{model}", f"logs/{model}"]
    with tempfile.TemporaryDirectory() as scratch:
        whole = Path(scratch) / "whole.tgz"
        with tarfile.open(whole, "w:gz", compresslevel=6) as tar:  # bf16 weights shrink ~20% (their exponents)
            for path in roots:
                tar.add(root / path, arcname=prefix + path)
            add_bytes(tar, prefix + MANIFEST, json.dumps({"roots": [prefix + r for r in roots]}).encode())
        data = whole.read_bytes()
    parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    if len(parts) > MAX_PARTS:
        raise FacecycleError(f"{name}: {len(data) / 2**20:.0f} MiB of results, more than {MAX_PARTS} parts of "
                             f"{PART_BYTES // 2**20} MiB can bring back")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{name}.tgz.*"):
        stale.unlink()
    paths = [out / f"{name}.tgz.{i:02d}" for i in range(len(parts))]
    for path, part in zip(paths, parts):
        path.write_bytes(part)
    return paths


def finish(parts_dir: Path, repo: Path) -> list[str]:
    """Join every `<name>.tgz.NN` set in `parts_dir` and put its folders into `repo`, each
    replacing the folder there, byte for byte. Returns the folders."""
    names = sorted({p.name.rsplit(".tgz.", 1)[0] for p in parts_dir.glob("*.tgz.[0-9][0-9]")})
    if not names:
        raise FacecycleError(f"{parts_dir}: no result parts (<name>.tgz.00, ...) from tools/gpu_sandbox/quick_run.sh")
    placed = []
    for name in names:
        data = b"".join(p.read_bytes() for p in sorted(parts_dir.glob(f"{name}.tgz.[0-9][0-9]")))
        with tempfile.TemporaryDirectory(dir=repo) as scratch:
            scratch = Path(scratch)
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    tar.extractall(scratch, filter="data")  # refuses absolute paths and `..`
            except (tarfile.TarError, EOFError, OSError, zlib.error) as err:  # OSError: gzip's own
                raise FacecycleError(f"{parts_dir}/{name}.tgz.*: not a complete result archive "
                                     f"({str(err).splitlines()[0]})") from None
            manifest = next(scratch.rglob(MANIFEST))
            for path in json.loads(manifest.read_text())["roots"]:
                with atomic_dir(repo / path) as tmp:
                    shutil.copytree(scratch / path, tmp, dirs_exist_ok=True)
                placed.append(path)
    return placed


def speed(log_dir: Path, batch_size: int, seconds: float, progress: Path) -> str:
    """Images per second of a finished training run: over the whole `seconds` (start, compile and
    export included), and the rate of the last steps as the run's progress bar (`progress`, its
    output) showed it when it closed (tqdm's moving average: the steady rate)."""
    steps = json.loads((log_dir / "metrics.json").read_text())["step"]
    bars = re.findall(r"\d+/\d+ \[[^\]]*?([\d.]+)(step/s|s/step)[,\]]", progress.read_text(errors="replace"))
    if not bars:
        raise FacecycleError(f"{progress}: no progress bar with a rate")
    rate, unit = bars[-1]
    steady = (float(rate) if unit == "step/s" else 1 / float(rate)) * batch_size
    return (f"{log_dir.name}: {steps} steps of {batch_size} in {seconds:.0f} s: "
            f"{steps * batch_size / seconds:.1f} img/s overall (start, compile, export included), "
            f"{steady:.1f} img/s at the end")


def variant(params: Path, out: Path, changes: list[str]) -> None:
    """Write `params` to `out` with each `dotted.key=value` of `changes` set (values in YAML), as
    `dvc exp run -S` would: `quick.cyclegan.batch_size=32` sets the quick profile's batch."""
    raw = yaml.safe_load(params.read_text())
    for change in changes:
        where, sep, value = change.partition("=")
        *parents, key = where.split(".")
        section = raw
        for name in parents:
            section = section.get(name) if isinstance(section, dict) else None
        if not (sep and parents) or not isinstance(section, dict) or key not in section:
            raise FacecycleError(f"{change!r}: expected an existing dotted.key=value (e.g. quick.cyclegan.batch_size=32)")
        section[key] = yaml.safe_load(value)
    with atomic_file(out) as tmp:
        tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
        for group in GROUPS:
            load_group(group, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python tools/gpu_sandbox/offload.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("pack-inputs", help="CPU: the train crops and the missing packages -> OUT")
    step.add_argument("--faces", type=Path, default=Path("data/faces"))
    step.add_argument("--out", type=Path, default=Path(".quick/inputs"))
    step = steps.add_parser("unpack-inputs", help="GPU: INPUTS -> WORK/faces, WORK/site")
    step.add_argument("inputs", type=Path)
    step.add_argument("work", type=Path)
    step = steps.add_parser("pack-results", help="GPU: ROOT's models/MODEL and logs/MODEL -> OUT/NAME.tgz.NN")
    step.add_argument("root", type=Path)
    step.add_argument("model")
    step.add_argument("out", type=Path)
    step.add_argument("name")
    step.add_argument("--prefix", default="", help="path inside the archive, e.g. variants/b1/")
    step = steps.add_parser("speed", help="GPU: img/s of a training run from its logs")
    step.add_argument("log_dir", type=Path)
    step.add_argument("batch_size", type=int)
    step.add_argument("seconds", type=float)
    step.add_argument("progress", type=Path, help="the train stage's output")
    step = steps.add_parser("finish", help="CPU: PARTS_DIR's results -> the repository")
    step.add_argument("parts_dir", type=Path)
    step.add_argument("--repo", type=Path, default=Path("."))
    step = steps.add_parser("variant", help="PARAMS with profile.group.key=value changes -> OUT")
    step.add_argument("params", type=Path)
    step.add_argument("out", type=Path)
    step.add_argument("changes", nargs="+")
    args = parser.parse_args()
    if args.step == "pack-inputs":
        for path in pack_inputs(args.faces, args.out):
            print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")
    elif args.step == "unpack-inputs":
        unpack_inputs(args.inputs, args.work)
    elif args.step == "pack-results":
        for path in pack_results(args.root, args.model, args.out, args.name, args.prefix):
            print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")
    elif args.step == "speed":
        print(speed(args.log_dir, args.batch_size, args.seconds, args.progress))
    elif args.step == "finish":
        for path in finish(args.parts_dir, args.repo):
            print(f"placed {path}")
    else:
        variant(args.params, args.out, args.changes)


if __name__ == "__main__":
    sys.argv[0] = "offload"
    run_stage(main)
