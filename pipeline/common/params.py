"""Load and validate the groups of params.yaml into typed objects.

Each DVC stage reads one or two groups. Values are coerced tolerantly (`dvc exp run -S x=5`
turns 10.0 into 5, an int) and checked; a bad value raises a FacecycleError that names
`group.key`, so the user sees one clear line instead of a traceback deep in training.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from pipeline.common.domains import DOMAINS, SPLITS
from pipeline.common.errors import FacecycleError

# Params that both training groups read from the top level of params.yaml: one value, one key, so
# `dvc exp run -S lambda_cyc=5` sets the weight of the cycle-consistency terms (the lambda of both
# papers' full objective) for CycleGAN and Recycle-GAN at once.
TOP_LEVEL = ("lambda_cyc",)
UPSAMPLE_MODES = ("transpose", "resize")  # the paper's transposed convolution, or resize-then-convolve
TEMPORAL_MODES = ("none", "flow")  # infer.temporal: per-frame translation, or stabilised along the input's flow
FLOW_PRESETS = ("ultrafast", "fast", "medium")  # OpenCV DIS presets (pipeline.translate.stabilise)
MASKS = ("head", "face", "square")  # merge.mask: face and the change around it, landmark face outline, or the crop box
EXPORTS = ("fp32", "bf16")  # dtype of the exported generators
PRECISIONS = ("auto", "bf16", "fp32")  # training precision: bf16 autocast where the hardware has it, or forced
# merge.preset: libx264's speed presets, fastest first
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
BLENDS = ("alpha", "poisson")  # merge.blend: feathered weighted mean, or Poisson cloning then the mask


def _check(ok: bool, where: str, why: str, source: str = "params") -> None:
    """Raise `<source>: <where>: <why>`; source is the file kind or name (params, videos.yaml)."""
    if not ok:
        raise FacecycleError(f"{source}: {where}: {why}")


@dataclass(frozen=True)
class Video:
    """One input video: a local path or a URL, its domain, optional split, checksum and trim."""

    name: str
    domain: str
    path: Optional[str] = None
    url: Optional[str] = None
    split: Optional[str] = None
    sha256: Optional[str] = None
    start: Optional[float] = None
    end: Optional[float] = None

    def validate(self, where: str, source: str) -> None:
        _check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.name or "") is not None, f"{where}.name",
               f"{self.name!r}: use letters, digits, _ and - (it names the video's files in every stage)", source)
        # videos.csv lists the videos next to their frame files; infer writes <name>_rec.npy and
        # <name>_raw.npy beside <name>.npy
        _check(self.name.lower() != "videos" and not self.name.endswith(("_rec", "_raw")), f"{where}.name",
               f"{self.name!r} is taken by the stages' own files (videos.csv, <video>_rec.npy, <video>_raw.npy)", source)
        _check(self.domain in DOMAINS, f"{where}.domain", f"must be A or B, got {self.domain!r}", source)
        _check((self.path is None) != (self.url is None), where, "give exactly one of path or url", source)
        _check(self.split in (None, *SPLITS), f"{where}.split", f"must be train or test, got {self.split!r}", source)
        if self.sha256 is not None:
            _check(len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256.lower()),
                   f"{where}.sha256", "must be 64 hex digits", source)
        for key in ("start", "end"):
            value = getattr(self, key)
            _check(value is None or value >= 0, f"{where}.{key}", f"must be >= 0 seconds, got {value}", source)
        if self.start is not None and self.end is not None:
            _check(self.end > self.start, f"{where}.end", "must be after start", source)


@dataclass(frozen=True)
class DataParams:
    """Group `data`: frame rate, face-crop geometry and the train/test split (the videos: `load_videos`)."""

    fps: Optional[float]
    jpeg_quality: int  # of the stored frames (pipeline/store/frames.py)
    load_size: int
    margin: float
    detect_every: int
    one_person: bool  # keep only the shots of each video's main person (dlib descriptors)
    test_share: float
    split_seed: int

    def validate(self) -> None:
        _check(self.fps is None or self.fps > 0, "data.fps", f"must be > 0 (or null for the source rate), got {self.fps}")
        _check(1 <= self.jpeg_quality <= 100, "data.jpeg_quality", f"must be in 1..100, got {self.jpeg_quality}")
        _check(self.load_size >= 16, "data.load_size", f"must be >= 16, got {self.load_size}")
        _check(self.margin >= 0, "data.margin", f"must be >= 0, got {self.margin}")
        _check(self.detect_every >= 1, "data.detect_every", f"must be >= 1, got {self.detect_every}")
        _check(0 < self.test_share < 1, "data.test_share", f"must be in (0, 1), got {self.test_share}")


@dataclass(frozen=True)
class GANParams:
    """Training settings shared by both models (params.yaml's `paper` profile: the official CycleGAN code's).

    An epoch is max(|A|, |B|) samples. The learning rate stays constant for `n_epochs` epochs, then
    decays linearly to 0 over `n_epochs_decay` epochs (fractions allowed, for short demo runs).
    """

    crop_size: int  # random crop from the load_size crops (paper: 256 from 286)
    flip: bool  # random horizontal flip of each sample (the official loader's default)
    # Global batch: under `torchrun --nproc_per_node=N` each process takes batch_size / N samples.
    # The recipe's lr is for batch 1; for batch k start from lr * k (README "Speed").
    batch_size: int
    lr: float
    beta1: float
    n_epochs: float
    n_epochs_decay: float
    # Weight of the L1 cycle terms (Recycle-GAN: recurrent, recycle, cycle); top-level in params.yaml.
    lambda_cyc: float
    lambda_identity: float  # identity weight, relative to lambda_cyc; 0 turns it off
    pool_size: int  # fakes kept for the discriminators; 0: no pool
    n_blocks: int  # residual blocks of the generators
    ngf: int  # generator (and predictor) width
    ndf: int  # discriminator width
    upsample: str  # transpose (paper) or resize (resize-then-convolve)
    seed: int
    compile: bool  # torch.compile the networks (same maths; on the CPU it needs a C++ compiler)
    precision: str  # auto: bf16 autocast on CUDA and on CPUs with bf16 instructions, else fp32; bf16; fp32
    # dtype of the exported generators: bf16 halves models/<model>; on CUDA, where autocast rounds every
    # convolution's weights to bf16, it translates bit for bit as fp32 does (tests/test_train.py)
    export: str
    log_every: int  # steps between logged losses (host syncs only there and at sample/checkpoint steps)
    sample_every: int  # steps between sample image grids
    checkpoint_every: int  # steps between resumable checkpoints

    def validate(self) -> None:
        group = self.group
        _check(self.crop_size >= 32 and self.crop_size % 4 == 0, f"{group}.crop_size",
               f"must be a multiple of 4 and >= 32, got {self.crop_size}")
        for key in ("batch_size", "ngf", "ndf", "log_every", "sample_every", "checkpoint_every"):
            _check(getattr(self, key) >= 1, f"{group}.{key}", f"must be >= 1, got {getattr(self, key)}")
        _check(self.lr > 0, f"{group}.lr", f"must be > 0, got {self.lr}")
        _check(0 <= self.beta1 < 1, f"{group}.beta1", f"must be in [0, 1), got {self.beta1}")
        for key in ("n_epochs", "n_epochs_decay", "lambda_cyc", "lambda_identity", "pool_size", "n_blocks"):
            where = key if key in TOP_LEVEL else f"{group}.{key}"
            _check(getattr(self, key) >= 0, where, f"must be >= 0, got {getattr(self, key)}")
        _check(self.n_epochs + self.n_epochs_decay > 0, f"{group}.n_epochs",
               "n_epochs + n_epochs_decay must be > 0")
        _check(self.upsample in UPSAMPLE_MODES, f"{group}.upsample",
               f"must be transpose or resize, got {self.upsample!r}")
        _check(self.export in EXPORTS, f"{group}.export", f"must be one of {', '.join(EXPORTS)}, got {self.export!r}")
        _check(self.precision in PRECISIONS, f"{group}.precision",
               f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class CycleGANParams(GANParams):
    """Group `cyclegan`: recipe of junyanz/pytorch-CycleGAN-and-pix2pix (Zhu et al., ICCV 2017)."""

    group: typing.ClassVar[str] = "cyclegan"


@dataclass(frozen=True)
class RecycleGANParams(GANParams):
    """Group `recyclegan`: the `paper` profile holds aayushbansal/Recycle-GAN's script and loader
    settings (resnet_6blocks, unet_256, identity 0, pool 0, no flip)."""

    group: typing.ClassVar[str] = "recyclegan"
    predictor_downs: int  # U-Net halvings of the predictor (unet_256: 8); crop_size must divide by 2**it
    add_cycle_loss: bool  # ReCycle-GAN variant: also the plain cycle losses on frames 0 and 1

    def validate(self) -> None:
        super().validate()
        _check(self.predictor_downs >= 5, "recyclegan.predictor_downs", f"must be >= 5, got {self.predictor_downs}")
        _check(self.crop_size % 2 ** self.predictor_downs == 0, "recyclegan.crop_size",
               f"must be a multiple of 2**predictor_downs = {2 ** self.predictor_downs}, got {self.crop_size}")


@dataclass(frozen=True)
class InferParams:
    """Group `infer`: how the trained generators translate the test crops."""

    batch_size: int
    device: str  # auto (CUDA when present), cuda or cpu
    compile: bool  # torch.compile the generators: 2-3x on CUDA, one compile per model first
    temporal: str  # none: each frame translated on its own; flow: stabilised along the input's motion
    temporal_window: int  # frames on each side averaged into each frame (flow)
    temporal_still: float  # input change (8-bit levels) below which a pixel measures the output's flicker (flow)
    temporal_strength: float  # tolerated input change, as a multiple of the output's flicker beyond its input's (flow)
    temporal_tau: float  # frames away at which a neighbour's weight falls to 0.61 at most (flow)
    temporal_flow: str  # OpenCV DIS preset of the stabiliser's flow (flow)

    def validate(self) -> None:
        _check(self.batch_size >= 1, "infer.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.device in ("auto", "cuda", "cpu"), "infer.device", f"must be auto, cuda or cpu, got {self.device!r}")
        _check(self.temporal in TEMPORAL_MODES, "infer.temporal", f"must be none or flow, got {self.temporal!r}")
        _check(self.temporal_window >= 1, "infer.temporal_window", f"must be >= 1, got {self.temporal_window}")
        _check(self.temporal_still > 0, "infer.temporal_still", f"must be > 0, got {self.temporal_still}")
        _check(self.temporal_strength > 0, "infer.temporal_strength", f"must be > 0, got {self.temporal_strength}")
        _check(self.temporal_tau > 0, "infer.temporal_tau", f"must be > 0, got {self.temporal_tau}")
        _check(self.temporal_flow in FLOW_PRESETS, "infer.temporal_flow",
               f"must be one of {', '.join(FLOW_PRESETS)}, got {self.temporal_flow!r}")


@dataclass(frozen=True)
class MergeParams:
    """Group `merge`: how translated faces are pasted back and the videos encoded."""

    mask: str  # head: face hull and the hair/outline the model changed; face: hull only; square: crop box
    head_change: float  # head mask: colour change (share of full scale) from which a pixel counts as changed
    head_time_sigma: float  # head mask: Gaussian over neighbouring frames of the track (sigma in frames)
    mask_erode: float  # face mask: erosion, as a share of the face size
    mask_blur: float  # face mask: width of the Gaussian edge, as a share of the face size
    feather: float  # square mask: share of the box size over which the face fades out at each edge
    blend: str  # alpha: weighted by the mask; poisson: OpenCV seamlessClone, then the mask
    color_match: bool  # match the face's Lab mean/std to the source crop, over the mask, before pasting
    crf: int  # H.264 quality (0 lossless .. 51 worst)
    preset: str  # libx264 speed preset: ultrafast .. veryslow (slower: fewer bytes at the same crf)
    sheet_frames: int  # frames on each contact sheet

    def validate(self) -> None:
        _check(self.mask in MASKS, "merge.mask", f"must be one of {list(MASKS)}, got {self.mask!r}")
        _check(0 < self.head_change <= 0.5, "merge.head_change", f"must be in (0, 0.5], got {self.head_change}")
        _check(0 <= self.head_time_sigma <= 10, "merge.head_time_sigma", f"must be in [0, 10], got {self.head_time_sigma}")
        _check(0 <= self.mask_erode <= 0.3, "merge.mask_erode", f"must be in [0, 0.3], got {self.mask_erode}")
        _check(0 <= self.mask_blur <= 0.5, "merge.mask_blur", f"must be in [0, 0.5], got {self.mask_blur}")
        _check(self.blend in BLENDS, "merge.blend", f"must be one of {list(BLENDS)}, got {self.blend!r}")
        _check(0 <= self.feather <= 0.5, "merge.feather", f"must be in [0, 0.5], got {self.feather}")
        _check(0 <= self.crf <= 51, "merge.crf", f"must be in [0, 51], got {self.crf}")
        _check(self.preset in X264_PRESETS, "merge.preset", f"must be one of {list(X264_PRESETS)}, got {self.preset!r}")
        _check(self.sheet_frames >= 1, "merge.sheet_frames", f"must be >= 1, got {self.sheet_frames}")


@dataclass(frozen=True)
class MetricsParams:
    """Group `metrics`: how faces are described for the identity metrics, and how many frames.

    A descriptor costs ~20-30 ms per face on the CPU (landmarks, chip, ResNet), so the demo
    describes every k-th test frame and a capped number of train frames per domain; the paper
    profile describes all.
    """

    face_rect: str  # detect: dlib HOG finds the face in the crop; crop: rectangle from data.margin
    face_size: int  # crops are resized to this many pixels before detection and landmarks
    identity_every: int  # describe every k-th test frame
    centroid_frames: Optional[int]  # train frames per domain for the centroids (evenly spaced); null: all

    def validate(self) -> None:
        _check(self.face_rect in ("detect", "crop"), "metrics.face_rect", f"must be detect or crop, got {self.face_rect!r}")
        _check(self.face_size >= 150, "metrics.face_size", f"must be >= 150 (dlib's face chip size), got {self.face_size}")
        _check(self.identity_every >= 1, "metrics.identity_every", f"must be >= 1, got {self.identity_every}")
        _check(self.centroid_frames is None or self.centroid_frames >= 2, "metrics.centroid_frames",
               f"must be >= 2 (or null for all), got {self.centroid_frames}")


def _coerce(value: Any, hint: Any, where: str, source: str = "params") -> Any:
    """Coerce a YAML value to the annotated type, tolerating int-for-float (from `-S x=5`)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, inner, where, source)
    if origin is tuple:
        (inner, _) = typing.get_args(hint)
        _check(isinstance(value, list), where, f"must be a list, got {value!r}", source)
        return tuple(_coerce(v, inner, f"{where}[{i}]", source) for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        _check(isinstance(value, dict), where, f"must be a mapping, got {value!r}", source)
        return _build(hint, value, where, source)
    if hint is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), where,
               f"must be a number, got {value!r}", source)
        return float(value)
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
        _check(ok, where, f"must be an integer, got {value!r}", source)
        return int(value)
    if hint is bool:
        _check(isinstance(value, bool), where, f"must be true or false, got {value!r}", source)
        return value
    if hint is str:
        _check(isinstance(value, (str, int, float)) and not isinstance(value, bool), where,
               f"must be text, got {value!r}", source)
        return str(value)
    raise TypeError(f"unsupported param type {hint} at {where}")


def _build(cls: type, raw: dict, where: str, source: str = "params"):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    _check(not unknown, where, f"unknown key(s) {unknown}; known: {sorted(known)}", source)
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in raw]
    _check(not missing, where, f"missing key(s) {missing}", source)
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}", source) for k, v in raw.items()})


GROUPS: dict[str, type] = {"data": DataParams, "cyclegan": CycleGANParams, "recyclegan": RecycleGANParams,
                           "infer": InferParams, "merge": MergeParams, "metrics": MetricsParams}


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping (params.yaml, videos.yaml) as a dict; a missing or malformed file is a user error."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FacecycleError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise FacecycleError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    _check(isinstance(raw, dict), "top level", "must be a mapping (key: value)", str(path))
    return raw


def profile_names(raw: dict) -> list[str]:
    """The profiles of a params mapping: its top-level mappings that are not groups (demo, paper, quick)."""
    return [key for key, value in raw.items() if isinstance(value, dict) and key not in GROUPS]


def profile_section(raw: dict, profile: str | None = None, source: str = "params") -> tuple[str, dict]:
    """(name, section) of the profile `profile`, or of the one params.yaml's `profile` key picks."""
    if profile is None:
        _check("profile" in raw, "profile", f"missing: name one of {profile_names(raw)} (README \"Profiles\")", source)
        profile = raw["profile"]
    names = profile_names(raw)
    _check(profile in names, "profile", f"{profile!r} is not a profile of this file; have {names}", source)
    for name in names:  # a mistyped group at the top level reads as a profile: this names it
        unknown = sorted(set(raw[name]) - set(GROUPS))
        _check(not unknown, name, f"unknown group(s) {unknown}; a profile sets keys of {sorted(GROUPS)}", source)
    return profile, raw[profile]


def load_group(name: str, path: str | Path = "params.yaml", profile: str | None = None):
    """Return the validated params group `name` (e.g. "data") from `path`: the shared top-level group
    with the keys the profile sets (params.yaml's `profile`, or `profile` when given); the training
    groups also take the TOP_LEVEL keys."""
    raw = read_yaml(path)
    profile, section = profile_section(raw, profile)
    shared, own = raw.get(name), section.get(name)
    _check(shared is not None or own is not None, name, f"group missing from {path} (shared or under {profile}:)")
    for where, part in ((name, shared), (f"{profile}.{name}", own)):
        _check(part is None or isinstance(part, dict), where, f"must be a mapping, got {part!r}")
    both = sorted(set(shared or {}) & set(own or {}))
    _check(not both, f"{profile}.{name}", f"{both} also set in the shared {name} group: set each key in one place")
    group = {**(shared or {}), **(own or {})}
    if issubclass(GROUPS[name], GANParams):
        for key in TOP_LEVEL:
            where = f"{profile}.{name}.{key}" if key in (own or {}) else f"{name}.{key}"
            _check(key not in group, where, f"set the top-level {key} instead (one value for both models)")
        group = dict(group, **{key: raw[key] for key in TOP_LEVEL if key in raw})
    params = _coerce(group, GROUPS[name], name)
    params.validate()
    return params


def run_params_text(path: str | Path = "params.yaml") -> str:
    """The text of `path` without the profiles the run does not use (each top-level block with the
    comment lines that lead into it): what the run's stages read, comments kept."""
    path = Path(path)
    raw = read_yaml(path)
    chosen, _ = profile_section(raw)
    others = set(profile_names(raw)) - {chosen}
    kept, lead, skipping = [], [], False
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            lead.append(line)
            continue
        if not line[0].isspace():
            skipping = line.split(":", 1)[0] in others
        if not skipping:
            kept += lead + [line]
        lead = []
    return "\n".join(kept + lead).rstrip("\n") + "\n"


def load_videos(path: str | Path = "videos.yaml") -> tuple[Video, ...]:
    """The validated input videos listed under `videos:` in `path` (a dependency of fetch, not a DVC
    param: the list is data, and `dvc exp show` and `dvc exp run -S` leave it alone)."""
    source = str(path)
    raw = read_yaml(path)
    _check("videos" in raw, "videos", "missing: list the videos under `videos:`", source)
    videos = _coerce(raw["videos"] or [], tuple[Video, ...], "videos", source)
    _check(len(videos) > 0, "videos", "no videos listed", source)
    for i, video in enumerate(videos):
        video.validate(f"videos[{i}]", source)
    names = [v.name.lower() for v in videos]  # one file each, also where case does not count (macOS)
    dupes = sorted({v.name for v in videos if names.count(v.name.lower()) > 1})
    _check(not dupes, "videos", f"duplicate names {dupes}", source)
    return videos
