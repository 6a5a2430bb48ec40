"""Translate face crops with a trained model's generators (batched, no grad, bf16 on CUDA).

Models are loaded only from `generators.safetensors` + `architecture.json`: safetensors is plain
tensors and JSON is plain data, so loading a model never runs code from the model folder (a
pickle, which can run anything when loaded, is refused, never opened).
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from pipeline.common.device import StepOptions, check_compiler, to_model_input, to_uint8
from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_dir
from pipeline.models.nets import ResnetGenerator
from pipeline.models.size import at_model_size
from pipeline.store.faces import CropArrayWriter, load_crops, read_boxes
from pipeline.store.tables import read_json, required
from pipeline.translate.stabilise import TEMPORAL, Stabiliser

WEIGHTS, ARCHITECTURE = "generators.safetensors", "architecture.json"
GENERATOR_OF_DOMAIN = {"A": ("G_A", "G_B"), "B": ("G_B", "G_A")}  # (translate, translate back)
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2; torch.save's zip archive


def _read_architecture(path: Path) -> dict:
    """Parse architecture.json; anything missing or malformed is a FacecycleError naming the file."""
    arch = read_json(path, f"train_{path.parent.name}", {"generator": dict})
    for key in ("crop_size", "load_size"):
        if not isinstance(arch.get(key), int) or arch[key] < 1:
            raise FacecycleError(f"{path}: '{key}' must be a positive integer, got {arch.get(key)!r}")
    return arch


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing file, a pickle or any other format is a FacecycleError."""
    with required(path, f"train_{path.parent.name}").open("rb") as f:
        head = f.read(4)
    if head.startswith(_PICKLE_MAGIC):
        raise FacecycleError(f"{path}: is a pickle / torch.save file, not safetensors; pickles are never loaded")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise FacecycleError(f"{path}: not a safetensors file ({err})") from None


def load_generators(model_dir: str | Path) -> tuple[dict[str, nn.Module], dict]:
    """Rebuild G_A and G_B (eval mode, CPU) from `model_dir`; return them with architecture.json."""
    model_dir = Path(model_dir)
    arch = _read_architecture(model_dir / ARCHITECTURE)
    weights = _read_weights(model_dir / WEIGHTS)
    generators = {}
    for name in ("G_A", "G_B"):
        try:
            net = ResnetGenerator(**arch["generator"])
        except TypeError as err:
            raise FacecycleError(f"{model_dir / ARCHITECTURE}: bad generator settings ({err})") from None
        state = {key[len(name) + 1:]: value for key, value in weights.items() if key.startswith(f"{name}.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
            raise FacecycleError(f"{model_dir / WEIGHTS}: {name} does not match {ARCHITECTURE} ({first})") from None
        generators[name] = net.eval().requires_grad_(False)
    return generators, arch


@torch.inference_mode()
def translate_batches(forward: nn.Module, backward: nn.Module | None, batches: Iterable[np.ndarray], crop_size: int,
                      device: torch.device, options: StepOptions | None = None, pad_to: int = 0
                      ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield (translated, reconstructed) uint8 [b, C, C, 3] for each uint8 [b, S, S, 3] batch of crops.

    Each crop is resized from S to the model's crop size C whole (`to_model_input`, the official
    test-time input); the reconstruction is backward(forward(x)), computed before rounding to uint8 (None
    without `backward`). `options`: layout, precision and compile, by default the training step's
    on `device` without compile. A batch shorter than `pad_to` is padded with blank crops whose
    results are dropped (each crop is translated on its own, instance norm has no batch
    statistics), so compiled generators see one shape: a new one would compile again.
    """
    options = options or StepOptions.for_device(device)
    nets = [net.to(device, memory_format=options.memory_format) for net in (forward, backward) if net is not None]
    if options.compile:
        nets = [torch.compile(net, dynamic=False) for net in nets]
    for batch in batches:
        batch = torch.from_numpy(np.require(batch, requirements="CW")).to(device)  # a read-only memmap is copied
        count = len(batch)
        if count < pad_to:
            batch = torch.cat([batch, batch.new_zeros((pad_to - count, *batch.shape[1:]))])
        x = to_model_input(batch, crop_size)
        with options.autocast(device):
            fake = nets[0](x.contiguous(memory_format=options.memory_format))
            rec = nets[1](fake) if backward is not None else None
        yield to_uint8(fake[:count]), (to_uint8(rec[:count]) if rec is not None else None)


def _write(paths: Sequence[Path], chunks: Iterable[tuple[np.ndarray, ...]], count: int, size: int, desc: str) -> None:
    """Stream tuples of uint8 [b, size, size, 3] batches into one .npy file per part."""
    with ExitStack() as files, tqdm(total=count, desc=desc, unit="face") as bar:
        outs = [files.enter_context(CropArrayWriter(path, count, size)) for path in paths]
        for parts in chunks:
            for out, part in zip(outs, parts):
                out.append(part)
            bar.update(len(parts[0]))


def _batches(crops: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    return (crops[i:i + batch_size] for i in range(0, len(crops), batch_size))


def translate_videos(model_dir: str | Path, faces_dir: str | Path, out_dir: str | Path, batch_size: int,
                     device: torch.device, compile: bool = False, stabiliser: Stabiliser | None = None) -> list[str]:
    """Write `<video>.npy` and `<video>_rec.npy` in `out_dir` for every test video of `faces_dir/boxes.csv`.

    Rows follow each video's face rows in boxes.csv (split test); A videos go through G_A, B
    videos through G_B. Results stream into .npy files batch by batch; `out_dir`
    appears only when all videos are done. `compile`: torch.compile the generators, every batch
    padded to `batch_size`. With a `stabiliser`, `<video>.npy` is the stabilised translation and
    `_rec` its reconstruction, and the per-frame translation is kept as `<video>_raw.npy` and
    `_raw_rec.npy`; `temporal.json` says which (docs/contracts.md). Returns the videos written.
    """
    model_dir, faces_dir = Path(model_dir), Path(faces_dir)
    if compile:
        check_compiler(device, "infer")
    options = StepOptions.for_device(device, compile)
    generators, arch = load_generators(model_dir)
    size = arch["crop_size"]
    test = read_boxes(faces_dir, "test")
    with atomic_dir(out_dir) as tmp:
        for video, rows in test.groupby("video", sort=True):
            domain = rows["domain"].iloc[0]
            faces = rows[rows["face"]]
            crops = (load_crops(faces_dir, domain, "test")[faces["crop_index"].to_numpy()] if len(faces)
                     else np.zeros((0, size, size, 3), np.uint8))
            forward, backward = (generators[name] for name in GENERATOR_OF_DOMAIN[domain])
            pad = batch_size if compile else 0
            main, raw = tmp / f"{video}.npy", tmp / f"{video}{'_raw' if stabiliser else ''}.npy"
            _write([raw, raw.with_name(f"{raw.stem}_rec.npy")],
                   translate_batches(forward, backward, _batches(crops, batch_size), size, device, options, pad),
                   len(crops), size, f"infer {model_dir.name} {video}")
            if stabiliser:
                steady = stabiliser(np.load(raw, mmap_mode="r"), at_model_size(crops, size), faces["frame"].to_numpy(),
                                    faces["shot"].to_numpy())
                _write([main], ((frame[None],) for frame in steady), len(crops), size,
                       f"stabilise {model_dir.name} {video}")
                back = translate_batches(backward, None, _batches(np.load(main, mmap_mode="r"), batch_size), size,
                                         device, options, pad)
                _write([tmp / f"{video}_rec.npy"], ((rec,) for rec, _ in back), len(crops), size,
                       f"reconstruct {model_dir.name} {video}")
        (tmp / TEMPORAL).write_text(json.dumps(stabiliser.settings() if stabiliser else {"temporal": "none"}) + "\n")
    return sorted(test["video"].unique())
