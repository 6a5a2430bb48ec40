"""Real inputs of the infer and merge_video stages, made by the real upstream code on sample clips.

Frames are decoded from real clips (tests/real_frames.py), faces found and cropped by
`pipeline.data.crop_faces.crop_faces` (dlib), and the models are real CycleGAN / Recycle-GAN networks,
tiny and freshly initialised, exported by `pipeline.train.loop.export` as the training stages do.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from helpers.real_frames import write_frames
from helpers.repo import shipped_params
from pipeline.data.crop_faces import crop_faces
from pipeline.models.cyclegan import CycleGAN
from pipeline.models.recyclegan import RecycleGAN
from pipeline.train.loop import export

LOAD_SIZE = 160  # ~0.7 of the ~220 px GRID face box: crop -> paste back keeps > 40 dB (identity test)
CROP_SIZE = 64
TINY = dict(crop_size=CROP_SIZE, ngf=8, n_blocks=1, ndf=8, batch_size=1, lr=2e-4)


def clips(samples: Path, robustness: Path, test_frames: int) -> list[dict]:
    """Two test videos (a GRID man with audio; a wooden wall, real footage without a face) and the
    training clips the crop stage requires of each domain."""
    return [
        {"name": "sbat6n", "domain": "A", "split": "test", "path": samples / "A" / "sbat6n.mpg", "limit": test_frames},
        {"name": "wall", "domain": "B", "split": "test", "limit": 12, "region": (0, 0, 160, 360),
         "path": robustness / "woman_occlusion_pexels.mp4"},
        {"name": "bbaf2n", "domain": "A", "split": "train", "path": samples / "A" / "bbaf2n.mpg", "limit": 6},
        {"name": "brbk7n", "domain": "B", "split": "train", "path": samples / "B" / "brbk7n.mpg", "limit": 6},
    ]


def write_inputs(root: Path, samples: Path, robustness: Path, load_size: int = LOAD_SIZE,
                 test_frames: int = 30) -> dict[str, Path]:
    """data/raw (the source files), data/frames and data/faces under `root`; returns their paths."""
    videos = clips(samples, robustness, test_frames)
    raw = root / "raw"
    raw.mkdir(parents=True)
    for video in videos:
        shutil.copy(video["path"], raw / Path(video["path"]).name)
    frames = write_frames(root / "frames", videos)
    params = shipped_params("data", load_size=load_size, margin=0.4, detect_every=5)
    crop_faces(frames, root / "faces", params)
    return {"raw": raw, "frames": frames, "faces": root / "faces"}


def write_models(models: Path) -> dict[str, Path]:
    """models/cyclegan and models/recyclegan: tiny, freshly initialised, exported as training does."""
    cpu = torch.device("cpu")
    out = {}
    for name, cls, params in (("cyclegan", CycleGAN, shipped_params("cyclegan", **TINY, seed=1)),
                              ("recyclegan", RecycleGAN, shipped_params("recyclegan", **TINY, seed=2, predictor_downs=5))):
        export(models / name, name, cls(params, cpu), params, LOAD_SIZE)
        out[name] = models / name
    return out
