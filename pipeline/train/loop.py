"""The training loop shared by CycleGAN and Recycle-GAN: device, schedule, logs, checkpoints, export.

A run can be killed at any moment and started again: every `checkpoint_every` steps the whole
training state (weights, optimisers, schedulers, image pools, sampler and RNG states, step) is
saved atomically with a fingerprint of the params and input files, and a new run resumes from it
only when the fingerprint matches, so N steps + kill + resume equals an uninterrupted run. Losses
are read back from the device only at log steps; everything else stays asynchronous.

`torchrun --nproc_per_node=N stages/train.py ...` trains on N GPUs (or N CPU processes) with
DistributedDataParallel: `batch_size` stays the global batch, each process takes its share of it,
and only rank 0 writes logs, checkpoints and the exported generators.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from pipeline.common.charts import loss_curves
from pipeline.common.device import pick_device, replica_group, to_uint8
from pipeline.common.domains import DOMAINS
from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_dir, atomic_file
from pipeline.common.params import TOP_LEVEL, GANParams
from pipeline.models import model_class
from pipeline.store.checksum import file_sha256
from pipeline.store.faces import load_crops
from pipeline.train.dataset import Domain, UnpairedBatches, center_crops

# Params that do not change the weights (compile: only their rounding, so a run may resume with it switched)
COSMETIC = ("log_every", "sample_every", "checkpoint_every", "compile", "export")
SAMPLES = 4  # rows of the sample grid


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU) when it started several processes.

    Yields (rank, world size); (0, 1) for a plain run.
    """
    several = int(os.environ.get("WORLD_SIZE", 1)) > 1
    if several:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    try:
        yield replica_group()
        if several:  # leave together: a process that tears gloo down while the lead still exports can abort
            dist.barrier()
    finally:
        if several:
            dist.destroy_process_group()


def lr_factor(step: int, steps_per_epoch: float, n_epochs: float, n_epochs_decay: float) -> float:
    """Constant for n_epochs, then linear to 0 over n_epochs_decay (updated every step)."""
    epoch = step / steps_per_epoch
    if epoch < n_epochs or n_epochs_decay == 0:
        return 1.0
    return max(0.0, 1.0 - (epoch - n_epochs) / n_epochs_decay)


def fingerprint(model: str, params: GANParams, inputs: list[Path], precision: str) -> dict:
    """What the weights depend on: the model, its params (less the cosmetic ones; `precision` as
    resolved on this machine), the input files."""
    values = {k: v for k, v in dataclasses.asdict(params).items() if k not in COSMETIC}
    values["precision"] = precision
    return {"model": model, "params": values, "inputs": {p.name: file_sha256(p) for p in inputs}}


def fingerprint_change(old: dict, new: dict, group: str) -> str:
    """Say which params or inputs differ between two fingerprints."""
    changes = [f"{k if k in TOP_LEVEL else f'{group}.{k}'} {old['params'].get(k)!r} -> {v!r}"
               for k, v in new["params"].items() if old.get("params", {}).get(k) != v]
    changes += [f"{name} changed" for name, digest in new["inputs"].items() if old.get("inputs", {}).get(name) != digest]
    if old.get("model") != new["model"]:
        changes.insert(0, f"model {old.get('model')} -> {new['model']}")
    return ", ".join(changes)


def load_checkpoint(path: Path, expected: dict, group: str) -> dict | None:
    """The saved state if it exists and matches `expected`; else None, saying why on stderr."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # RNG states must stay on the CPU
    except Exception as err:  # a checkpoint from another version, or not ours: never unpickle arbitrary objects
        print(f"{group}: cannot read {path} ({type(err).__name__}); starting over", file=sys.stderr)
        return None
    if state.get("fingerprint") != expected:
        why = fingerprint_change(state.get("fingerprint") or {}, expected, group)
        print(f"{group}: {path} was made with other settings ({why}); starting over", file=sys.stderr)
        return None
    print(f"{group}: resuming from {path} at step {state['step']}", file=sys.stderr)
    return state


def truncate_history(log_dir: Path, step: int) -> None:
    """Drop logged metric rows after `step`: a killed run logged past its last checkpoint."""
    for tsv in (log_dir / "plots" / "metrics").rglob("*.tsv"):
        with open(tsv, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        column = rows[0].index("step")
        kept = rows[:1] + [r for r in rows[1:] if int(r[column]) <= step]
        with open(tsv, "w", newline="") as f:
            csv.writer(f, delimiter="\t").writerows(kept)


@torch.no_grad()
def sample_grid(model, real_A: torch.Tensor, real_B: torch.Tensor) -> np.ndarray:
    """One row per sample: real A | fake B | rec A | real B | fake A | rec B, on white lines."""
    n = model.networks
    with model.autocast():
        fake_B, fake_A = n.G_A(real_A), n.G_B(real_B)
        tiles = torch.stack([real_A, fake_B, n.G_B(fake_B), real_B, fake_A, n.G_A(fake_A)], dim=1)  # [samples, 6, ...]
    return to_uint8(tile_grid(tiles.float(), pad=2, value=1.0)[None])[0]


def tile_grid(tiles: torch.Tensor, pad: int, value: float) -> torch.Tensor:
    """[C, H', W'] image of tiles [rows, columns, C, H, W], `pad` pixels of `value` around each
    (torchvision's make_grid layout, without importing torchvision's models: 1.1 s per stage)."""
    rows, columns, channels, height, width = tiles.shape
    padded = F.pad(tiles, (pad, 0, pad, 0), value=value)  # a line left of and above each tile
    grid = padded.permute(2, 0, 3, 1, 4).reshape(channels, rows * (height + pad), columns * (width + pad))
    return F.pad(grid, (0, pad, 0, pad), value=value)  # and the last lines right and below


def export(out_dir: Path, model_name: str, model, params: GANParams, load_size: int) -> None:
    """Write G_A and G_B as safetensors plus what inference needs to rebuild them (contracts.md)."""
    dtype = torch.bfloat16 if params.export == "bf16" else torch.float32
    weights = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.networks.state_dict().items() if k.startswith(("G_A.", "G_B."))}
    architecture = {"model": model_name,
                    "generator": {"input_nc": 3, "output_nc": 3, "ngf": params.ngf, "n_blocks": params.n_blocks,
                                  "upsample": params.upsample},
                    "crop_size": params.crop_size, "load_size": load_size}
    with atomic_dir(out_dir) as tmp:
        save_file(weights, tmp / "generators.safetensors", metadata={"model": model_name})
        (tmp / "architecture.json").write_text(json.dumps(architecture, indent=2) + "\n")


def training_state(model, schedulers: dict, batches: UnpairedBatches, step: int, fp: dict,
                   losses: dict[str, float]) -> dict:
    return {"fingerprint": fp, "step": step, "losses": losses,
            "networks": model.networks.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in model.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "pools": {k: p.state_dict() for k, p in model.pools.items()},
            "sampler": batches.state_dict(),
            "torch_rng": torch.get_rng_state()}


def restore(state: dict, model, schedulers: dict, batches: UnpairedBatches) -> int:
    model.networks.load_state_dict(state["networks"])
    for kind, parts in (("optimizers", model.optimizers), ("schedulers", schedulers), ("pools", model.pools)):
        for name, part in parts.items():
            part.load_state_dict(state[kind][name])
    batches.load_state_dict(state["sampler"])
    torch.set_rng_state(state["torch_rng"])
    return state["step"]


def train(model_name: str, params: GANParams, faces_dir: str | Path, out_dir: str | Path,
          checkpoint_dir: str | Path, log_dir: str | Path, crop_budget: int | None = None) -> dict[str, float]:
    """Train `model_name` on the train crops in `faces_dir`, resuming a matching checkpoint.

    Writes the generators to `out_dir`, checkpoints to `checkpoint_dir`, dvclive logs to
    `log_dir`; returns the losses of the last log window. `crop_budget`: see crops_fit.
    """
    device = pick_device()
    with process_group(device) as (rank, world):
        return train_replica(TrainRun(model_name, params, Path(faces_dir), Path(out_dir), Path(checkpoint_dir),
                                      Path(log_dir), device, rank, world, crop_budget))


class LossWindow:
    """Sums of each loss over the steps since the last log, kept on the device (no host sync)."""

    def __init__(self, world: int):
        self.world = world
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.steps += 1

    def mean(self) -> dict[str, float]:
        """Each loss's mean over the window (and over the processes: equal shares of one batch); resets it."""
        values = torch.stack(list(self.sums.values())).float().div(self.steps)
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        means = dict(zip(self.sums, values.tolist()))
        self.sums, self.steps = {}, 0
        return means


class DivergenceWatch:
    """The first step with a non-finite loss, tracked on the device and read only when asked."""

    def __init__(self, total: int, device: torch.device, world: int):
        self.never, self.world = total + 1, world
        self.first_bad = torch.tensor(self.never, device=device)

    def see(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        bad = (self.first_bad == self.never) & ~torch.isfinite(sum(losses.values()))
        self.first_bad = torch.where(bad, step, self.first_bad)

    def stop_if_diverged(self, group: str, last_saved: int, checkpoint: Path) -> None:
        if self.world > 1:  # every process stops together, at the first step any of them saw
            dist.all_reduce(self.first_bad, dist.ReduceOp.MIN)
        if self.first_bad.item() < self.never:
            kept = f"the last good checkpoint, step {last_saved}, stays in {checkpoint}" if last_saved \
                else "no checkpoint was saved"
            raise FacecycleError(f"{group}: a loss became NaN or infinite at step {self.first_bad.item()} "
                                 f"(training diverged; try a lower {group}.lr); {kept}")


def crops_fit(nbytes: int, device: torch.device, budget: int | None = None) -> bool:
    """Whether `nbytes` of train crops go onto the training device: at most `budget` bytes when
    given, else at most half the free memory of a CUDA device (the networks, their activations and
    optimiser states need the rest). On the CPU the memory-mapped arrays serve either way."""
    if budget is None:
        budget = torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else nbytes
    return nbytes <= budget


def load_domains(group: str, params: GANParams, faces_dir: Path, frames: int,
                 device: torch.device, budget: int | None = None) -> tuple[dict[str, Domain], int]:
    """Both domains' train crops on the device, or streamed to it from the host when they do not
    fit (crops_fit), and their shared size (refused unless crop_size fits)."""
    nbytes = sum(load_crops(faces_dir, d, "train").nbytes for d in DOMAINS)
    stream = not crops_fit(nbytes, device, budget)
    if stream:
        print(f"{group}: the train crops ({nbytes / 2**30:.2f} GiB) exceed the {device.type} memory budget: "
              "they stay memory-mapped on the host and each batch is copied over", file=sys.stderr)
    domains = {d: Domain.load(faces_dir, d, frames, device, stream) for d in DOMAINS}
    load_size = domains["A"].load_size
    for d, domain in domains.items():
        if domain.load_size != load_size or params.crop_size > domain.load_size:
            raise FacecycleError(f"{group}.crop_size {params.crop_size} does not fit {faces_dir / f'{d}_train.npy'} "
                                 f"({domain.load_size} px crops; A and B must share one size >= crop_size)")
    return domains, load_size


def log_losses(live, step: int, losses: dict[str, float], lr: float, group: str) -> None:
    """One dvclive row per loss and the lr at `step`, and the loss curves so far as a PNG (viewable
    offline, unlike DVC's HTML plots, which load Vega from a CDN)."""
    live.step = step
    for name, value in losses.items():
        live.log_metric(f"train/{name}", value)
    live.log_metric("train/lr", lr)
    live.next_step()
    plots = Path(live.plots_dir)
    loss_curves(plots / "metrics" / "train", plots / "images" / "losses.png", f"{group} losses")


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """One training process: which model with which params, where it reads and writes, and its
    place among torchrun's processes (rank 0, the lead, is the one that writes)."""

    model_name: str
    params: GANParams
    faces_dir: Path
    out_dir: Path
    checkpoint_dir: Path
    log_dir: Path
    device: torch.device
    rank: int = 0
    world: int = 1
    crop_budget: int | None = None  # see crops_fit

    @property
    def lead(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint(self) -> Path:
        return self.checkpoint_dir / "checkpoint.pt"


@dataclasses.dataclass
class Training:
    """What a run builds before its first step: the model, its batches and lr schedules, the step
    count, the fingerprint a checkpoint must match, and the fixed crops of the sample grids."""

    model: object
    batches: UnpairedBatches
    schedulers: dict
    total: int
    fingerprint: dict
    load_size: int
    fixed: tuple[torch.Tensor, torch.Tensor]

    @property
    def precision(self) -> str:
        """What the steps run in, as the model's options resolved `precision` on this device."""
        return precision_of(self.model)


def precision_of(model) -> str:
    return "bf16" if model.options.bf16 else "fp32"


def due(step: int, every: int, total: int) -> bool:
    """Whether work done every `every` steps (logs, samples, checkpoints) runs after `step`: on its
    period, and always after the last step."""
    return step % every == 0 or step == total


def build(run: TrainRun) -> Training:
    """The model, data and schedules of `run`, before any checkpoint is read."""
    params, name = run.params, run.model_name
    model_cls = model_class(name)
    frames = model_cls.frames_per_sample
    if params.batch_size % run.world:
        raise FacecycleError(f"{name}.batch_size {params.batch_size} does not split over {run.world} processes "
                             "(it is the global batch; make it a multiple of --nproc_per_node)")
    domains, load_size = load_domains(name, params, run.faces_dir, frames, run.device, run.crop_budget)
    inputs = [run.faces_dir / f"{d}_train.npy" for d in DOMAINS]
    inputs += [run.faces_dir / "train_crops.csv"] if frames > 1 else []  # the triplets
    model = model_cls(params, run.device)
    batches = UnpairedBatches(domains["A"], domains["B"], params.crop_size, params.batch_size, params.seed, run.rank,
                              run.world, params.flip)
    steps_per_epoch = batches.epoch_size / params.batch_size
    schedulers = {name: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, steps_per_epoch, params.n_epochs, params.n_epochs_decay))
        for name, opt in model.optimizers.items()}
    return Training(model, batches, schedulers, total=math.ceil((params.n_epochs + params.n_epochs_decay) * steps_per_epoch),
                    fingerprint=fingerprint(name, params, inputs, precision_of(model)), load_size=load_size,
                    fixed=tuple(center_crops(domains[d], SAMPLES, params.crop_size) for d in DOMAINS))


def resume(run: TrainRun, training: Training) -> tuple[int, dict[str, float]]:
    """(step, losses of the last log window) of a checkpoint that matches the run's fingerprint,
    its state restored into `training`; (0, {}) without one. The lead cuts its logs back to that step."""
    state = load_checkpoint(run.checkpoint, training.fingerprint, run.model_name)
    if not state:
        return 0, {}
    start = restore(state, training.model, training.schedulers, training.batches)
    if run.lead:
        truncate_history(run.log_dir, start)
    return start, state["losses"]


def train_replica(run: TrainRun) -> dict[str, float]:
    """train() in one process: every process steps its replicas, the lead also writes."""
    params, name = run.params, run.model_name
    training = build(run)
    model, batches, schedulers, total = training.model, training.batches, training.schedulers, training.total
    start, logged = resume(run, training)
    window, divergence, last_saved = LossWindow(run.world), DivergenceWatch(total, run.device, run.world), start
    from dvclive import Live  # here, not at the top: it imports DVC (~0.5 s), which infer and the benches never use

    live = Live(str(run.log_dir), resume=bool(start), dvcyaml=False, save_dvc_exp=False) if run.lead \
        else contextlib.nullcontext()
    if run.lead:
        live.log_params({"device": run.device.type, "precision": training.precision})  # logs/<model>/params.yaml
        print(f"{name}: {total} steps of {params.batch_size} on {run.device.type} in {training.precision} "
              f"(precision {params.precision})", file=sys.stderr)
    with live, tqdm(total=total, initial=start, desc=name, unit="step", dynamic_ncols=True, disable=not run.lead) as bar:
        for step in range(start + 1, total + 1):  # `step` optimisation steps done at the end of the body
            losses = model.optimize(next(batches))
            for scheduler in schedulers.values():
                scheduler.step()
            divergence.see(step, losses)
            window.add(losses)
            bar.update(1)
            if due(step, params.log_every, total) or due(step, params.checkpoint_every, total):
                divergence.stop_if_diverged(name, last_saved, run.checkpoint)
            if due(step, params.log_every, total):
                logged = window.mean()
                if run.lead:
                    log_losses(live, step, logged, schedulers["G"].get_last_lr()[0], name)
                    bar.set_postfix({k.removeprefix("loss_"): f"{v:.3f}" for k, v in logged.items()}, refresh=False)
            if run.lead and due(step, params.sample_every, total):
                grid = sample_grid(model, *training.fixed)
                live.log_image(f"samples/{step:07d}.png", grid)
                live.log_image("samples.png", grid)
            if due(step, params.checkpoint_every, total):
                if run.lead:  # every process holds the same state (replicas; sampler and pools of the global batch)
                    with atomic_file(run.checkpoint) as tmp:
                        torch.save(training_state(model, schedulers, batches, step, training.fingerprint, logged), tmp)
                last_saved = step
    if run.lead:
        export(run.out_dir, name, model, params, training.load_size)
    return logged
