"""Face-crop arrays as training samples: unpaired sampling, same-shot triplets, crop and flip.

Sampling follows the official unaligned dataset: A in a shuffled order (a new permutation of
max(|A|, |B|) positions each epoch, position i -> A[i % |A|]), B at random, each sample with its own
random crop (load_size -> crop_size) and horizontal flip. Recycle-GAN samples are three consecutive
frames of one shot sharing one crop, unflipped as in the authors' triplet loader (`flip`). The
random draws come from a CPU torch.Generator whose state is checkpointed (the same samples on any
device); the uint8 crops live on the training device, each step's draws go there in one small
asynchronous copy and the pixels are gathered there, so the host never waits for the GPU. Crops
too large for the device stay memory-mapped on the host instead (`stream`): each batch's pixels
are gathered there and copied over, the same values either way. Under torchrun every process
draws the same global batch and keeps its share (samples rank, rank + world, ...), so the samples
are those of a one-process run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.common.errors import FacecycleError
from pipeline.common.runs import continues
from pipeline.store.faces import load_crops, read_train_crops


def triplet_starts(faces_dir: str | Path, domain: str, n_crops: int) -> np.ndarray:
    """Rows t of `faces_dir`'s `<domain>_train` array such that t, t+1, t+2 are consecutive frames of one shot.

    A missing face (no crop row), a scene cut (new `shot`) or a clip boundary (new `video`) breaks
    the run, so a triplet never spans them.
    """
    table = read_train_crops(faces_dir)
    rows = table[table.domain == domain].sort_values("crop_index", kind="stable")
    if not np.array_equal(rows.crop_index.to_numpy(), np.arange(n_crops)):
        raise FacecycleError(f"{Path(faces_dir) / 'train_crops.csv'}: lists {len(rows)} crops for {domain}_train "
                             f"but the array holds {n_crops}")
    video, shot, frame = (rows[c].to_numpy() for c in ("video", "shot", "frame"))
    if n_crops < 3:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(continues(frame, shot, 1, video)[:-1] & continues(frame, shot, 2, video))


@dataclass
class Domain:
    """The crops of one domain (on the training device, or streamed to it), and where each sample starts."""

    images: torch.Tensor  # uint8 [N, S, S, 3]
    starts: torch.Tensor  # int64 [M]: first row of each sample
    frames: int           # frames per sample: 1 (CycleGAN) or 3 (Recycle-GAN)
    device: torch.device | None = None  # streamed: `images` stay memory-mapped on the host, batches go here

    @classmethod
    def load(cls, faces_dir: str | Path, domain: str, frames: int, device: torch.device,
             stream: bool = False) -> "Domain":
        crops = load_crops(faces_dir, domain, "train")
        if len(crops) == 0:
            raise FacecycleError(f"{Path(faces_dir) / f'{domain}_train.npy'}: holds no face crops")
        if frames == 1:
            starts = np.arange(len(crops))
        else:
            starts = triplet_starts(faces_dir, domain, len(crops))
            if len(starts) == 0:
                raise FacecycleError(f"{Path(faces_dir) / f'{domain}_train.npy'}: no {frames} consecutive frames "
                                     "of one shot to train Recycle-GAN on")
        images = torch.from_numpy(crops)
        starts = torch.from_numpy(starts).to(torch.int64)
        return cls(images, starts, frames, device) if stream else cls(images.to(device), starts, frames)

    @property
    def load_size(self) -> int:
        return self.images.shape[1]


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`; a host tensor goes to CUDA through pinned memory, so the copy is queued
    without waiting for the GPU."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def crop_flip(images: torch.Tensor, rows: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
              flip: torch.Tensor, crop_size: int, to: torch.device | None = None) -> torch.Tensor:
    """Gather crops as float in [-1, 1]: rows [B, T] of `images` -> [B, T, 3, crop, crop].

    Sample b takes the window at (top[b], left[b]), mirrored where flip[b], for all its T frames.
    The uint8 pixels are gathered where `images` are, then copied `to` another device when given.
    """
    device = images.device
    rows, top, left, flip = (t.to(device) for t in (rows, top, left, flip))
    offsets = torch.arange(crop_size, device=device)
    ys = top[:, None] + offsets                                              # [B, crop]
    xs = left[:, None] + torch.where(flip[:, None], crop_size - 1 - offsets, offsets)
    pixels = images[rows[:, :, None, None], ys[:, None, :, None], xs[:, None, None, :]]  # [B, T, crop, crop, 3]
    if to is not None:
        pixels = to_device(pixels, to)
    return pixels.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)


class UnpairedBatches:
    """Endless batches {"A": ..., "B": ...} drawn as the official unaligned dataset draws them.

    Tensors are [B, 3, crop, crop] for single frames and [B, 3 frames, 3, crop, crop] for triplets.
    `flip`: mirror each sample with probability 1/2.
    """

    def __init__(self, a: Domain, b: Domain, crop_size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 flip: bool = True):
        self.domains = {"A": a, "B": b}
        self.flip = flip
        self.crop_size, self.batch_size = crop_size, batch_size  # the global batch, over all `world` processes
        self.rank, self.world = rank, world
        self.epoch_size = max(len(a.starts), len(b.starts))
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.zeros(0, dtype=torch.int64)  # A positions left in this epoch

    def _positions(self) -> dict[str, torch.Tensor]:
        taken = []
        while sum(len(t) for t in taken) < self.batch_size:
            if len(self.order) == 0:
                self.order = torch.randperm(self.epoch_size, generator=self.generator)
            need = self.batch_size - sum(len(t) for t in taken)
            taken.append(self.order[:need])
            self.order = self.order[need:]
        n_b = len(self.domains["B"].starts)
        return {"A": torch.cat(taken) % len(self.domains["A"].starts),
                "B": torch.randint(n_b, (self.batch_size,), generator=self.generator)}

    def draw(self) -> dict[str, dict[str, torch.Tensor]]:
        """The next global batch's random choices per domain: rows [B, frames], top, left, flip [B]."""
        plan = {}
        for name, position in self._positions().items():
            domain = self.domains[name]
            span = domain.load_size - self.crop_size + 1
            plan[name] = {"rows": domain.starts[position][:, None] + torch.arange(domain.frames),
                          "top": torch.randint(span, (self.batch_size,), generator=self.generator),
                          "left": torch.randint(span, (self.batch_size,), generator=self.generator),
                          "flip": (torch.rand(self.batch_size, generator=self.generator) < 0.5 if self.flip
                                   else torch.zeros(self.batch_size, dtype=torch.bool))}
        return plan

    def __next__(self) -> dict[str, torch.Tensor]:
        """This process's share of the next batch, gathered where the crops are, on the training device."""
        plan = self.draw()
        frames = self.domains["A"].frames
        packed = torch.stack([torch.cat([c["rows"], c["top"][:, None], c["left"][:, None], c["flip"][:, None]], 1)
                              for c in plan.values()])[:, self.rank::self.world]  # [2, share, frames + 3]
        packed = to_device(packed, self.domains["A"].images.device)
        batch = {}
        for name, choice in zip(plan, packed):
            rows, top, left, flip = choice.split([frames, 1, 1, 1], 1)
            domain = self.domains[name]
            images = crop_flip(domain.images, rows, top[:, 0], left[:, 0], flip[:, 0].bool(), self.crop_size,
                               domain.device)
            batch[name] = images[:, 0] if frames == 1 else images
        return batch

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()


def center_crops(domain: Domain, count: int, crop_size: int) -> torch.Tensor:
    """`count` first frames of evenly spaced samples, centre-cropped: fixed images for sample grids."""
    position = torch.linspace(0, len(domain.starts) - 1, count).round().long()
    rows = domain.starts[position][:, None]
    corner = torch.full((count,), (domain.load_size - crop_size) // 2)
    return crop_flip(domain.images, rows, corner, corner, torch.zeros(count, dtype=torch.bool), crop_size,
                     domain.device)[:, 0]
