"""Train on a GPU machine that reaches nothing else, and finish on the CPU (docs/quick.md).

Such a machine gets a copy of the working tree plus at most 64 MiB of git-ignored inputs, and
hands back at most 8 files of 16 MiB each (64 MiB in all) per command; its Python has torch,
OpenCV, pandas and safetensors but no DVC. Hence, as `python tools/gpu_sandbox/offload.py <step>`:

- `pack-inputs` (CPU): the crop_faces output as one archive: train crops as lossless WebP (the
  train stages' inputs arrive bit for bit, checked by sha256 on arrival), test crops as JPEG
  quality 95 with full-resolution colour (read by infer alone), boxes.csv and train_crops.csv as they are; and the
  pure-Python packages that the train stage's logger (dvclive, which imports DVC) needs and the
  GPU image lacks, copied from this environment (compiled parts left out: each has a pure-Python
  fallback).
- `unpack-inputs` (GPU): the .npy arrays and the packages back.
- `bf16` (GPU): a model's generators rounded to bfloat16: half the bytes to carry back, and on CUDA
  the same translations, since autocast rounds every convolution's weights to bf16 anyway.
- `pack-results` (GPU): models, logs and translated crops (JPEG, as the test crops) as one tar.gz in parts.
- `speed` (GPU): training images per second, overall and at the end of the run.
- `finish` (CPU): joins the parts and puts everything where `dvc.yaml` expects it.
- `variant`: a params file with some keys changed (the batch-size comparison of docs/quick.md).
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
from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_dir, atomic_file
from pipeline.common.params import load_group
from pipeline.common.profile import set_key
from pipeline.store.checksum import file_sha256
from pipeline.store.faces import CropArrayWriter

# What dvclive imports that the GPU image lacks (its other imports, numpy, pandas, PIL, requests,
# fsspec, psutil and the like, are there): top-level names in this environment.
DEVICE_LACKS = ("dvclive", "dvc", "dvc_data", "dvc_objects", "dvc_http", "dvc_render", "dvc_studio_client",
                "scmrepo", "dulwich", "funcy", "ruamel", "flatten_dict", "flufl", "zc", "diskcache", "dpath",
                "public", "pygtrie", "sqltrie", "voluptuous")
CODECS = {"lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # WebP quality above 100: lossless
          "lossy": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95,  # full-resolution colour (WebP's is halved)
                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])}
PART_BYTES = 15 * 2**20  # under the 16 MiB a returned file may have
MAX_PARTS = 7            # of the 8 files a command may return; one is left for its log
MANIFEST = "manifest.json"


def write_crop_archive(path: Path, arrays: dict[str, tuple[Path, str]], files: tuple[Path, ...] = ()) -> None:
    """A tar of `manifest.json`, each uint8 [N, S, S, 3] array as its images back to back in
    `<name>.bin` (per array: lossless WebP or JPEG), and `files` as they are."""
    manifest = {"arrays": {}, "files": [f.name for f in files]}
    with atomic_file(path) as tmp, tarfile.open(tmp, "w") as tar:
        for name, (source, codec) in arrays.items():
            crops = np.load(source, mmap_mode="r")
            suffix, options = CODECS[codec]
            sizes, blob = [], io.BytesIO()
            for crop in tqdm(crops, desc=f"{path.name}: {name}", unit="crop", leave=False):
                ok, data = cv2.imencode(suffix, np.ascontiguousarray(crop[..., ::-1]), options)
                if not ok:
                    raise FacecycleError(f"{source}: {codec} encoding failed")
                sizes.append(len(data))
                blob.write(data.tobytes())
            manifest["arrays"][name] = {"shape": list(crops.shape), "codec": codec, "sizes": sizes,
                                        "sha256": file_sha256(source)}
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
    a lossless array that does not come back bit for bit is an error."""
    with tarfile.open(path) as tar, atomic_dir(out_dir) as tmp:
        manifest = json.loads(tar.extractfile(MANIFEST).read())
        for name, entry in manifest["arrays"].items():
            blob = np.frombuffer(tar.extractfile(f"{name}.bin").read(), np.uint8)
            count, size = entry["shape"][:2]
            ends = np.cumsum(entry["sizes"])
            with CropArrayWriter(tmp / f"{name}.npy", count, size) as array:
                for i, end in enumerate(tqdm(ends, desc=f"{path.name}: {name}", unit="crop", leave=False)):
                    array.append(cv2.imdecode(blob[end - entry["sizes"][i]:end], cv2.IMREAD_COLOR)[None, ..., ::-1])
            if entry["codec"] == "lossless" and file_sha256(tmp / f"{name}.npy") != entry["sha256"]:
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
    """`out/faces.tar` (the crops) and `out/site.tar.xz` (the packages); returns both."""
    arrays = {f"{d}_{s}": (faces / f"{d}_{s}.npy", "lossless" if s == "train" else "lossy")
              for d in "AB" for s in ("train", "test")}
    for source, _ in arrays.values():
        if not source.exists():
            raise FacecycleError(f"{source}: not found (run `dvc repro crop_faces` first)")
    out.mkdir(parents=True, exist_ok=True)
    write_crop_archive(out / "faces.tar", arrays, (faces / "boxes.csv", faces / "train_crops.csv"))
    pack_site(out / "site.tar.xz")
    return [out / "faces.tar", out / "site.tar.xz"]


def unpack_inputs(inputs: Path, work: Path) -> None:
    """`work/faces` and `work/site` from pack_inputs' files in `inputs`."""
    read_crop_archive(inputs / "faces.tar", work / "faces")
    with tarfile.open(inputs / "site.tar.xz") as tar, atomic_dir(work / "site") as tmp:
        tar.extractall(tmp, filter="data")


def to_bf16(model_dir: Path) -> None:
    """Rewrite `model_dir/generators.safetensors` with its float tensors in bfloat16."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = model_dir / "generators.safetensors"
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        weights = {k: f.get_tensor(k) for k in f.keys()}
    weights = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()}
    with atomic_file(path) as tmp:
        save_file(weights, tmp, metadata=metadata)


def pack_results(root: Path, model: str, out: Path, name: str, prefix: str = "") -> list[Path]:
    """Write `root`'s models/<model>, logs/<model> and data/translated/<model> (its crops as a JPEG
    crop archive, its other files as they are) as `out/<name>.tgz.NN` parts; inside, paths are
    `prefix` + those. Returns the parts."""
    translated = root / "data" / "translated" / model
    roots = [f"models/{model}", f"logs/{model}", f"data/translated/{model}"]
    with tempfile.TemporaryDirectory() as scratch:
        crops = Path(scratch) / f"{model}.crops"
        write_crop_archive(crops, {p.stem: (p, "lossy") for p in sorted(translated.glob("*.npy"))})
        whole = Path(scratch) / "whole.tgz"
        with tarfile.open(whole, "w:gz", compresslevel=6) as tar:  # bf16 weights shrink ~20% (their exponents)
            for path in roots[:2]:
                tar.add(root / path, arcname=prefix + path)
            tar.add(crops, arcname=prefix + roots[2] + ".crops")
            for path in sorted(p for p in translated.iterdir() if p.suffix != ".npy"):  # infer's temporal.json
                tar.add(path, arcname=f"{prefix}{roots[2]}/{path.name}")
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
    replacing the folder there (translated crops decoded back to .npy). Returns the folders."""
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
                crops = scratch / f"{path}.crops"
                if crops.exists():
                    read_crop_archive(crops, repo / path)
                    for extra in sorted((scratch / path).glob("*")):  # what infer writes beside the crops
                        shutil.copy(extra, repo / path / extra.name)
                else:
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
    """Write `params` to `out` with each `group.key=value` of `changes` set (values in YAML)."""
    lines = params.read_text().splitlines()
    groups = set()
    for change in changes:
        where, sep, value = change.partition("=")
        group, dot, key = where.partition(".")
        if not (sep and dot):
            raise FacecycleError(f"{change!r}: expected group.key=value")
        set_key(lines, group, key, yaml.safe_load(value))
        groups.add(group)
    with atomic_file(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
        for group in sorted(groups):
            load_group(group, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python tools/gpu_sandbox/offload.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("pack-inputs", help="CPU: data/faces and the missing packages -> OUT")
    step.add_argument("--faces", type=Path, default=Path("data/faces"))
    step.add_argument("--out", type=Path, default=Path(".quick/inputs"))
    step = steps.add_parser("unpack-inputs", help="GPU: INPUTS -> WORK/faces, WORK/site")
    step.add_argument("inputs", type=Path)
    step.add_argument("work", type=Path)
    step = steps.add_parser("bf16", help="GPU: round MODEL_DIR's generators to bfloat16")
    step.add_argument("model_dir", type=Path)
    step = steps.add_parser("pack-results", help="GPU: ROOT's model, logs, translated crops -> OUT/NAME.tgz.NN")
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
    step = steps.add_parser("variant", help="PARAMS with group.key=value changes -> OUT")
    step.add_argument("params", type=Path)
    step.add_argument("out", type=Path)
    step.add_argument("changes", nargs="+")
    args = parser.parse_args()
    if args.step == "pack-inputs":
        for path in pack_inputs(args.faces, args.out):
            print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")
    elif args.step == "unpack-inputs":
        unpack_inputs(args.inputs, args.work)
    elif args.step == "bf16":
        to_bf16(args.model_dir)
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
